"""The report's figures as PNG bytes (matplotlib, Agg, no pyplot global state), one colour per strategy
in every figure so a reader learns the legend once. A function returns None when it has nothing to draw.
"""
from __future__ import annotations

import functools
import io
import math
from typing import Sequence

import pandas as pd

from base import registry
from base.results import RunResult
from reports.table import pareto_front

STYLE = {
    "font.size": 11, "axes.titlesize": 13, "axes.titleweight": "bold", "axes.labelsize": 11,
    "legend.fontsize": 10, "axes.spines.top": False, "axes.spines.right": False,
    "axes.grid": True, "grid.alpha": 0.3, "savefig.dpi": 110,
}


def strategy_colours(runs: Sequence[tuple[str, str]]) -> dict[str, str]:
    """(label, strategy kind) pairs -> colour per label: a kind keeps its colour in every report; a second
    label of the same kind (lora-r8, lora-r16) gets a darker shade of it."""
    from matplotlib.colors import to_hex, to_rgb

    colours: dict[str, str] = {}
    seen_per_kind: dict[str, int] = {}
    for label, kind in runs:
        if label in colours:
            continue
        shade = seen_per_kind.get(kind, 0)
        seen_per_kind[kind] = shade + 1
        colour = registry.get(kind).colour if registry.known(kind) else registry.FALLBACK_COLOUR  # one per kind
        red, green, blue = to_rgb(colour)
        factor = 0.7 ** shade
        colours[label] = to_hex((red * factor, green * factor, blue * factor))
    return colours


def _figure(width: float, height: float, columns: int = 1):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    return figure, figure.subplots(1, columns, squeeze=False)[0]


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None}, facecolor="white")
    return buffer.getvalue()


def _styled(draw):
    """Run a drawing function under the report style without touching matplotlib's global defaults."""
    @functools.wraps(draw)
    def wrapper(*args, **kwargs):
        import matplotlib

        with matplotlib.rc_context(STYLE):
            return draw(*args, **kwargs)
    return wrapper


@_styled
def accuracy_vs_cost(frame: pd.DataFrame, colours: dict[str, str]) -> bytes | None:
    """Primary metric (with its 95% interval) against $ to train and serve 1M queries; the Pareto front —
    runs no other run beats on both — is joined by a line and ringed."""
    runs = frame[(frame["status"] == "ok")].dropna(subset=["score", "cost_usd"])
    if runs.empty:
        return None
    on_front = pareto_front(runs["cost_usd"].tolist(), runs["score"].tolist())
    figure, (axes,) = _figure(8, 4.8)
    for (_, row), front in zip(runs.iterrows(), on_front):
        # an interval need not contain its point (e.g. calibrated or imported runs): whiskers never go negative
        low = max(row["score"] - row["score_low"], 0) if not math.isnan(row["score_low"]) else 0
        high = max(row["score_high"] - row["score"], 0) if not math.isnan(row["score_high"]) else 0
        axes.errorbar(row["cost_usd"], row["score"], yerr=[[low], [high]], fmt="o", markersize=10,
                      color=colours[row["label"]], ecolor=colours[row["label"]], elinewidth=2, capsize=4,
                      markeredgecolor="black" if front else "white", markeredgewidth=2 if front else 1,
                      zorder=3)
        axes.annotate(row["label"], (row["cost_usd"], row["score"]), xytext=(8, 6), textcoords="offset points",
                      fontsize=10, fontweight="bold" if front else "normal")
    front = runs[on_front].sort_values("cost_usd")
    axes.plot(front["cost_usd"], front["score"], "--", color="black", linewidth=1.2, alpha=0.7,
              label="Pareto front", zorder=2)
    costs = runs["cost_usd"]
    if costs.min() > 0 and costs.max() / costs.min() > 30:
        axes.set_xscale("log")
    else:
        axes.set_xlim(left=0, right=costs.max() * 1.15 or 1)  # from zero: distances show real cost ratios
    metric = runs["primary_metric"].iloc[0]
    axes.set_xlabel("cost: train once + serve 1M queries (USD)  →  cheaper to the left")
    axes.set_ylabel(f"{metric} (95% CI)  ↑ better")
    axes.set_title(f"{runs['task'].iloc[0]}: {metric} vs cost")
    axes.legend(loc="lower right", frameon=False)
    return _png(figure)


@_styled
def forgetting_bars(runs: Sequence[RunResult], colours: dict[str, str]) -> bytes | None:
    """General benchmarks before and after adaptation: one group per benchmark, the base model's score in
    grey next to each adapted model's, with the change written over the bar."""
    measured = [run for run in runs if (run.forgetting or {}).get("benchmarks")]
    if not measured:
        return None
    benchmarks = sorted({name for run in measured for name in run.forgetting["benchmarks"]})
    width = 0.8 / (len(measured) + 1)
    figure, (axes,) = _figure(max(7.0, 1.6 * len(benchmarks) * (len(measured) + 1) / 2), 4.6)
    for position, name in enumerate(benchmarks):
        base = next((run.forgetting["benchmarks"][name].get("base") for run in measured
                     if name in run.forgetting["benchmarks"]), None)
        if base is not None:
            axes.bar(position, base, width, color="#d0d0d0", edgecolor="#606060",
                     label="base model" if position == 0 else None)
        for index, run in enumerate(measured, start=1):
            row = run.forgetting["benchmarks"].get(name) or {}
            if row.get("adapted") is None:
                continue
            x = position + index * width
            axes.bar(x, row["adapted"], width, color=colours[run.label], label=run.label if position == 0 else None)
            if row.get("delta") is not None:
                axes.annotate(f"{row['delta']:+.2f}", (x, row["adapted"]), xytext=(0, 3), textcoords="offset points",
                              ha="center", fontsize=9)
    axes.set_xticks([position + width * len(measured) / 2 for position in range(len(benchmarks))], benchmarks)
    axes.set_ylabel("accuracy  ↑ better")
    tallest = max([row.get("base") or 0 for run in measured for row in run.forgetting["benchmarks"].values()]
                  + [row.get("adapted") or 0 for run in measured for row in run.forgetting["benchmarks"].values()])
    axes.set_ylim(0, min(1.05, tallest * 1.2) or 1)
    axes.set_title(f"{measured[0].task}: general ability before and after adaptation")
    axes.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    return _png(figure)


@_styled
def latency_memory_bars(frame: pd.DataFrame, colours: dict[str, str]) -> bytes | None:
    """Serving latency (p50 bar, p95 whisker) and peak memory side by side, one bar per strategy."""
    runs = frame[frame["status"] == "ok"]
    has_latency = runs["latency_p50_s"].notna().any()
    has_memory = runs["peak_memory_mb"].notna().any()
    if runs.empty or not (has_latency or has_memory):
        return None
    figure, axes = _figure(max(8.0, 1.1 * len(runs) * 2), 4.2, columns=2)
    labels = runs["label"].tolist()
    bar_colours = [colours[label] for label in labels]
    latency_axes, memory_axes = axes
    if has_latency:
        p50 = runs["latency_p50_s"].fillna(0)
        p95 = runs["latency_p95_s"].fillna(p50)
        latency_axes.bar(labels, p50, color=bar_colours, label="p50")
        latency_axes.errorbar(labels, p50, yerr=[[0] * len(p50), (p95 - p50).clip(lower=0)], fmt="none",
                              ecolor="black", capsize=5)
    latency_axes.set_title("latency per query (bar p50, whisker p95)", fontsize=12)
    latency_axes.set_ylabel("seconds  ↓ better")
    if has_memory:
        memory_axes.bar(labels, runs["peak_memory_mb"].fillna(0) / 1024, color=bar_colours)
    memory_axes.set_title("peak memory")
    memory_axes.set_ylabel("GB  ↓ better")
    for each in axes:
        each.tick_params(axis="x", rotation=30)
    figure.suptitle(f"{runs['task'].iloc[0]}: serving speed and memory", fontweight="bold", fontsize=13)
    return _png(figure)


@_styled
def loss_curves(runs: Sequence[RunResult], colours: dict[str, str]) -> bytes | None:
    """Training loss per step (and eval loss per epoch when recorded) for the runs that trained."""
    trained = [run for run in runs if (run.curves or {}).get("train_loss")]
    if not trained:
        return None
    has_eval = any(run.curves.get("eval_loss") for run in trained)
    figure, axes = _figure(11 if has_eval else 8, 4.2, columns=2 if has_eval else 1)
    for run in trained:
        steps, losses = zip(*run.curves["train_loss"])
        axes[0].plot(steps, losses, color=colours[run.label], linewidth=2, label=run.label)
        if has_eval and run.curves.get("eval_loss"):
            epochs, eval_losses = zip(*run.curves["eval_loss"])
            axes[1].plot(epochs, eval_losses, "o-", color=colours[run.label], linewidth=2, label=run.label)
    axes[0].set_title("training loss")
    axes[0].set_xlabel("step")
    axes[0].set_ylabel("loss  ↓ better")
    axes[0].legend(frameon=False)
    if has_eval:
        from matplotlib.ticker import MaxNLocator

        axes[1].xaxis.set_major_locator(MaxNLocator(integer=True))
        axes[1].set_title("eval loss")
        axes[1].set_xlabel("epoch")
        axes[1].set_ylabel("loss  ↓ better")
    figure.suptitle(f"{trained[0].task}: learning curves", fontweight="bold", fontsize=13)
    return _png(figure)

"""Run JSONs -> one pandas frame (a row per run), plus what the report derives from it: which value is best
in each column, the Pareto front of accuracy against cost, and the recommendation.

Everything downstream (Markdown, HTML, plots) reads this frame, so the numbers agree everywhere.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from base import registry
from base.judge import Candidate, judge
from base.results import RunResult, load_runs

# Which way is better for each numeric column of the frame.
HIGHER = "higher"
LOWER = "lower"
DIRECTIONS: dict[str, str] = {
    "score": HIGHER,
    "format_compliance": HIGHER,
    "forgetting_delta": HIGHER,
    "retained": HIGHER,
    "train_time_s": LOWER,
    "peak_memory_mb": LOWER,
    "trainable_params": LOWER,
    "adapter_size_mb": LOWER,
    "latency_p50_s": LOWER,
    "latency_p95_s": LOWER,
    "tokens_per_query": LOWER,
    "usd_train": LOWER,
    "usd_per_1m_queries": LOWER,
    "cost_usd": LOWER,
}

COST_KEYS = ("train_time_s", "examples_per_s", "tokens_per_s", "peak_memory_mb", "trainable_params", "total_params",
             "adapter_size_mb", "latency_p50_s", "latency_p95_s", "prompt_tokens_per_query",
             "completion_tokens_per_query", "usd_train", "usd_per_1m_queries")


def load_results(results_dir: str | Path) -> pd.DataFrame:
    """The results table of a `compare` output directory: one row per run (see `results_frame`)."""
    return results_frame(load_runs(results_dir))


def _number(value: Any) -> float:
    """A float, or NaN for missing / non-numeric values, so pandas columns stay numeric."""
    if isinstance(value, bool) or value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _interval(value: Any) -> tuple[float, float]:
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return _number(value[0]), _number(value[1])
    return math.nan, math.nan


def _sum_if_any(*values: float) -> float:
    """Sum of the known values; NaN only when none is known."""
    known = [value for value in values if not math.isnan(value)]
    return sum(known) if known else math.nan


def _forgetting_columns(forgetting: dict[str, Any]) -> dict[str, Any]:
    benchmarks = forgetting.get("benchmarks") or {}
    deltas = {name: _number(row.get("delta")) for name, row in benchmarks.items() if isinstance(row, dict)}
    deltas = {name: delta for name, delta in deltas.items() if not math.isnan(delta)}
    significant = [name for name, row in benchmarks.items()
                   if isinstance(row, dict) and (row.get("dropped") is True or _number(row.get("ci_high")) < 0)]
    worst = min(deltas, key=deltas.get) if deltas else None
    return {
        "retained": _number(forgetting.get("retained")),
        "forgetting_delta": sum(deltas.values()) / len(deltas) if deltas else math.nan,
        "worst_benchmark": worst,
        "worst_delta": deltas[worst] if worst else math.nan,
        "significant_drops": ", ".join(sorted(significant)),
    }


def run_row(run: RunResult) -> dict[str, Any]:
    """The flat, numeric view of one run that every table and plot reads."""
    metric = run.primary_metric
    low, high = _interval(run.metrics.get(f"{metric}_ci"))
    cost = {key: _number(run.cost.get(key)) for key in COST_KEYS}
    row: dict[str, Any] = {
        "run_id": run.run_id,
        "task": run.task,
        "strategy": run.strategy,
        "label": run.label or run.strategy,
        "status": run.status.value,
        "error": run.error,
        "primary_metric": metric,
        "score": _number(run.metrics.get(metric)),
        "score_low": low,
        "score_high": high,
        "n": _number(run.metrics.get("n")),
        "scoring": run.scoring,
        "prompt_format": ((run.config or {}).get("task") or {}).get("prompt_format") or "chat",
        "format_compliance": _number(run.metrics.get("format_compliance")),
        "truncated_prompts": _number(run.metrics.get("truncated_prompts")),
        **cost,
        "tokens_per_query": _sum_if_any(cost["prompt_tokens_per_query"], cost["completion_tokens_per_query"]),
        "cost_usd": _sum_if_any(cost["usd_train"], cost["usd_per_1m_queries"]),
        **_forgetting_columns(run.forgetting or {}),
        # an unknown kind may change weights: never claim its general ability is untouched
        "changes_weights": not registry.known(run.strategy) or registry.get(run.strategy).changes_weights,
        "strategy_order": registry.order(run.strategy),
        "seed": run.seed,
        "model": run.model,
        "config_hash": run.config_hash,
    }
    return row


def results_frame(runs: Sequence[RunResult]) -> pd.DataFrame:
    """One row per run, ordered by task, then cheapest strategy first (the order the report lists them)."""
    frame = pd.DataFrame([run_row(run) for run in runs])
    if frame.empty:
        return frame
    return frame.sort_values(["task", "strategy_order", "label"], kind="stable").reset_index(drop=True)


def ok_runs(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["status"] == "ok"]


def best_mask(values: pd.Series, direction: str) -> pd.Series:
    """True where a value is the best of its column; all False when fewer than two distinct values exist
    (marking every row, or the only row, as best says nothing)."""
    numeric = pd.to_numeric(values, errors="coerce")
    known = numeric.dropna()
    if known.nunique() < 2:
        return pd.Series(False, index=values.index)
    target = known.max() if direction == HIGHER else known.min()
    return numeric.apply(lambda value: bool(not math.isnan(value) and math.isclose(value, target, rel_tol=1e-9, abs_tol=1e-12)))


def pareto_front(costs: Sequence[float], scores: Sequence[float]) -> list[bool]:
    """Which points no other point beats: one is dominated when another costs no more and scores no less,
    and is strictly better in one of the two. Points with a missing value are never on the front."""
    points = list(zip(costs, scores))

    def known(point: tuple[float, float]) -> bool:
        return not any(value is None or math.isnan(value) for value in point)

    def dominates(a: tuple[float, float], b: tuple[float, float]) -> bool:
        return a[0] <= b[0] and a[1] >= b[1] and (a[0] < b[0] or a[1] > b[1])

    return [known(point) and not any(known(other) and dominates(other, point) for other in points)
            for point in points]


def drops_general_ability(row: pd.Series) -> bool:
    """Forgetting worth a manager's attention: a benchmark whose 95% interval of the change lies below zero.

    A lower mean `retained` alone is not enough: on small benchmark subsets it moves by several points by chance."""
    return bool(row.get("significant_drops"))


@dataclass
class Recommendation:
    """The headline for one task: which run to use and why, in three sentences."""

    task: str
    label: str | None  # None when no run of the task succeeded
    best_label: str | None
    cheaper_within_ci: bool
    sentences: list[str]


def fmt_usd(value: float | None) -> str:
    return "—" if value is None or math.isnan(value) else f"${value:,.2f}"


def _fmt_score(row: pd.Series) -> str:
    text = f"{row['primary_metric']} {row['score']:.3f}"
    if not (math.isnan(row["score_low"]) or math.isnan(row["score_high"])):
        text += f" (95% CI {row['score_low']:.3f}–{row['score_high']:.3f})"
    return text


def _forgetting_sentence(row: pd.Series) -> str:
    if not row["changes_weights"] and math.isnan(row["retained"]) and math.isnan(row["forgetting_delta"]):
        return f"{row['label']} leaves the model's weights unchanged, so its general ability is untouched."
    if math.isnan(row["retained"]) and math.isnan(row["forgetting_delta"]):
        return f"Forgetting was not measured for {row['label']}: run `adapt compare --forgetting` before relying on it for other tasks."
    kept = f"keeps {row['retained']:.0%} of the base model's general-benchmark score" if not math.isnan(row["retained"]) else ""
    worst = (f"{row['worst_benchmark']} {row['worst_delta']:+.3f}" if isinstance(row["worst_benchmark"], str) else "")
    if drops_general_ability(row):
        details = "; ".join(part for part in (kept, f"largest drop {worst}" if worst else "") if part)
        return f"Caution: {row['label']} loses general ability ({details}), so keep the base model for other tasks."
    tail = f" (largest change {worst}, within noise)" if worst else ""
    return f"{row['label']} {kept or 'shows no significant forgetting'}{tail}: no significant loss of general ability was measured."


def _candidate(row: pd.Series) -> Candidate:
    known = lambda value: None if math.isnan(value) else float(value)  # noqa: E731
    return Candidate(label=row["label"], strategy=row["strategy"], metric=row["primary_metric"], score=row["score"],
                     low=known(row["score_low"]), high=known(row["score_high"]), cost_usd=known(row["cost_usd"]),
                     usd_per_1m_queries=known(row["usd_per_1m_queries"]), retained=known(row["retained"]))


def recommend(frame: pd.DataFrame, task: str, forgetting_tolerance: str | None = None) -> Recommendation:
    """The judge's pick (base.judge, the same one `adapt advise --results` uses): best primary metric, less lost
    general ability as much as the user's tolerance says, and a cheaper run within the best one's 95% interval
    instead of the best. Forgetting of the pick (or of the best) is named."""
    runs = frame[frame["task"] == task]
    scored = ok_runs(runs).dropna(subset=["score"])
    if scored.empty:
        failed = len(runs) - len(ok_runs(runs))
        return Recommendation(task, None, None, False, [
            f"No run of {task} produced a score, so there is nothing to recommend yet.",
            f"{failed} of {len(runs)} runs failed; their errors are listed under Failed runs.",
            "Fix those errors and run `adapt compare` again: finished runs are kept.",
        ])
    verdict = judge([_candidate(row) for _, row in scored.iterrows()], forgetting_tolerance)
    rows = {row["label"]: row for _, row in scored.iterrows()}
    best, pick = rows[verdict.best.label], rows[verdict.pick.label]
    others = len(scored) - 1
    if not verdict.cheaper_within_ci:
        runner_up = rows[verdict.ranked[1].label] if len(verdict.ranked) > 1 else None
        reason = (f"It has the best {best['primary_metric']} of the {len(scored)} strategies compared"
                  + (f"; the runner-up, {runner_up['label']}, scores {runner_up['score']:.3f}." if runner_up is not None else "."))
        top = scored.loc[scored["score"].idxmax()]
        if top["score"] > best["score"]:  # the pick's lost general ability outweighed a higher score
            reason = (f"{top['label']} scores higher ({top['score']:.3f}) but loses more general ability than the stated "
                      f"forgetting tolerance accepts.")
    else:
        priced = not (math.isnan(pick["cost_usd"]) or math.isnan(best["cost_usd"]))
        money = (f" and costs {fmt_usd(pick['cost_usd'])} instead of {fmt_usd(best['cost_usd'])} to train and serve 1M queries"
                 if priced and fmt_usd(pick["cost_usd"]) != fmt_usd(best["cost_usd"]) else " and is the cheaper strategy")
        reason = (f"The top score, {best['label']}'s {best['score']:.3f}, is not clearly better: {pick['label']} lies within "
                  f"its 95% interval{money}, so the cheaper one is recommended.")
    sentences = [f"For {task}, use {pick['label']}: it reaches {_fmt_score(pick)}"
                 + (f" on {int(pick['n'])} eval examples." if not math.isnan(pick["n"]) else "."),
                 reason if others else "It is the only strategy with a score, so compare more strategies to be sure.",
                 _forgetting_sentence(pick)]
    if pick["label"] != best["label"] and drops_general_ability(best):
        sentences[2] = (sentences[2][:-1] + f", while the top scorer {best['label']} loses general ability"
                        + (f" (keeps {best['retained']:.0%})" if not math.isnan(best["retained"]) else "") + ".")
    return Recommendation(task, pick["label"], best["label"], pick["label"] != best["label"], sentences)

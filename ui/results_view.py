"""The Results page's work: the report `adapt report` writes, per-run details and each run's predictions,
filterable to its errors or to what it got wrong that another run got right. Pure functions of the results folder.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from base.results import RunResult, load_runs
from reports.build import build_report, read_predictions
from reports.html import render_html

PREDICTION_COLUMNS = ("id", "input", "target", "prediction", "correct")
SHOWN_ROWS = 500
FILTERS = ("all", "errors", "errors another run got right")


def report_page(results_dir: Path) -> str:
    """The whole HTML report (no script, a CSP, every text escaped), to show in a sandboxed frame."""
    return render_html(build_report(results_dir))


def run_labels(results_dir: Path) -> list[str]:
    return [f"{run.task} · {run.label}" for run in load_runs(results_dir)]


def find_run(results_dir: Path, name: str) -> RunResult | None:
    return next((run for run in load_runs(results_dir) if f"{run.task} · {run.label}" == name), None)


def run_details(run: RunResult) -> dict[str, Any]:
    """What one run measured and how it was configured (the run JSON without its curves)."""
    data = run.to_json()
    data.pop("curves", None)
    return data


def prediction_rows(results_dir: Path, run: RunResult, show: str = "all", other: RunResult | None = None) -> list[list[Any]]:
    """The run's predictions; `errors`: only those it got wrong; `errors another run got right`: those it got
    wrong and `other` (same task) got right — what zero-shot missed that LoRA fixed."""
    rows = read_predictions(results_dir, run) or {}
    others = (read_predictions(results_dir, other) or {}) if other is not None else {}
    chosen = []
    for key, row in rows.items():
        if show != "all" and row.get("correct") is not False:
            continue
        if show == FILTERS[2] and (others.get(key) or {}).get("correct") is not True:
            continue
        chosen.append([key, str(row.get("input") if row.get("input") is not None else row.get("prompt", "")),
                       str(row.get("target", "")), str(row.get("prediction", "")), bool(row.get("correct"))])
    return chosen[:SHOWN_ROWS]



SUMMARY_COLUMNS = ("task", "run", "status", "metric", "score", "train s", "error")


def summary_rows(results_dir: Path) -> list[list[Any]]:
    """One row per finished run: the table the Run page shows as runs finish."""
    rows = []
    for run in load_runs(results_dir):
        value = run.metrics.get(run.primary_metric)
        train = run.cost.get("train_time_s")
        rows.append([run.task, run.label, run.status.value, run.primary_metric,
                     f"{value:.3f}" if isinstance(value, (int, float)) else "—",
                     f"{train:.1f}" if isinstance(train, (int, float)) else "—", (run.error or "")[:200]])
    return rows


def loss_points(results_dir: Path, labels: set[str]) -> list[dict[str, Any]]:
    """Every optimizer step's training loss of the named finished runs, from their run JSON."""
    return [{"run": run.label, "step": int(step), "loss": float(loss)} for run in load_runs(results_dir)
            if run.label in labels for step, loss in (run.curves or {}).get("train_loss") or []]

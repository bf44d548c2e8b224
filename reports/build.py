"""`adapt report`: results directory -> a document (sections of callouts, tables, figures) -> report.md and a
self-contained report.html. The document holds plain text only; each renderer escapes it for its format.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from base import paths
from base.errors import AdaptError
from base.io import write_bytes_atomic, write_text_atomic
from base.results import RunResult, load_runs
from reports import plots
from reports.document import Block, Bullets, Callout, Cell, Paragraph, Plot, Report, Section, Table
from reports.table import DIRECTIONS, best_mask, drops_general_ability, fmt_usd, recommend, results_frame

EXAMPLES_PER_TASK = 5
PROMPT_CHARS = 400
DIGEST_CHARS = 16  # enough to tell two data files apart; the run JSON keeps the full digest


# --- number formatting (one place, so Markdown and HTML agree) ---------------------------------------------

DASH = "—"


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _number_or_none(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def fmt_seconds(value: float) -> str:
    if _missing(value):
        return DASH
    if value == 0:
        return "0 s"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 120:
        return f"{value:.1f} s"
    if value < 7200:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.1f} h"


def fmt_megabytes(value: float) -> str:
    if _missing(value):
        return DASH
    return f"{value / 1024:.2f} GB" if value >= 1024 else f"{value:.1f} MB"


def fmt_count(value: float) -> str:
    if _missing(value):
        return DASH
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= limit:
            return f"{value / limit:.1f}{suffix}"
    return f"{value:.0f}"


def fmt_score(row: pd.Series) -> str:
    """`0.820 (0.770–0.870)`: the primary metric with its 95% interval, or the bare score without one."""
    if _missing(row["score"]):
        return DASH
    if _missing(row["score_low"]) or _missing(row["score_high"]):
        return f"{row['score']:.3f}"
    return f"{row['score']:.3f} ({row['score_low']:.3f}–{row['score_high']:.3f})"


def fmt_forgetting(row: pd.Series) -> str:
    delta, retained = row["forgetting_delta"], row["retained"]
    if _missing(delta) and _missing(retained):
        return DASH
    parts = [f"{delta:+.3f}" if not _missing(delta) else "", f"({retained:.0%} kept)" if not _missing(retained) else ""]
    text = " ".join(part for part in parts if part)
    return text + " ⚠" if drops_general_ability(row) else text


def fmt_params(row: pd.Series) -> str:
    text = fmt_count(row["trainable_params"])
    if not _missing(row["trainable_params"]) and not _missing(row["total_params"]) and row["total_params"] > 0:
        text += f" ({row['trainable_params'] / row['total_params']:.2%})"
    return text


def fmt_latency(row: pd.Series) -> str:
    if _missing(row["latency_p50_s"]):
        return DASH
    return f"{fmt_seconds(row['latency_p50_s'])} / {fmt_seconds(row['latency_p95_s'])}"


def fmt_tokens(row: pd.Series) -> str:
    prompt, completion = row["prompt_tokens_per_query"], row["completion_tokens_per_query"]
    if _missing(prompt) and _missing(completion):
        return DASH
    return f"{fmt_count(prompt)} + {fmt_count(completion)}"


def fmt_share(value: float) -> str:
    return DASH if _missing(value) else f"{value:.0%}"


# Results table: (header, formatter, column whose direction decides "best").
RESULT_COLUMNS = (
    ("strategy", lambda row: row["label"], None),
    ("{metric} (95% CI)", fmt_score, "score"),
    ("format compliance", lambda row: fmt_share(row["format_compliance"]), "format_compliance"),
    ("forgetting Δ (retained)", fmt_forgetting, "forgetting_delta"),
    ("train time", lambda row: fmt_seconds(row["train_time_s"]), "train_time_s"),
    ("peak memory", lambda row: fmt_megabytes(row["peak_memory_mb"]), "peak_memory_mb"),
    ("trainable params", fmt_params, "trainable_params"),
    ("adapter size", lambda row: DASH if row["trainable_params"] == 0 else fmt_megabytes(row["adapter_size_mb"]),
     "adapter_size_mb"),  # a prompting run saves no weights: nothing to size
    ("latency p50 / p95", fmt_latency, "latency_p50_s"),
    ("tokens / query (prompt + completion)", fmt_tokens, "tokens_per_query"),
    ("$ train", lambda row: fmt_usd(row["usd_train"]), "usd_train"),
    ("$ / 1M queries", lambda row: fmt_usd(row["usd_per_1m_queries"]), "usd_per_1m_queries"),
)


def results_table(task_frame: pd.DataFrame) -> Table:
    """The per-task comparison: successful runs, cheapest strategy first, best value of each column marked."""
    runs = task_frame[task_frame["status"] == "ok"]
    metric = runs["primary_metric"].iloc[0] if len(runs) else "score"
    best = {column: best_mask(runs[column], DIRECTIONS[column]) for _, _, column in RESULT_COLUMNS if column}
    rows = [[Cell(format_cell(row), bool(column and best[column][index]))
             for _, format_cell, column in RESULT_COLUMNS]
            for index, row in runs.iterrows()]
    how = ", ".join(sorted({f"{s} scoring, {f} prompts" for s, f in zip(runs["scoring"], runs["prompt_format"])}))
    return Table([header.format(metric=metric) for header, _, _ in RESULT_COLUMNS], rows,
                 caption=f"★ best in its column. Scored by {how}: `rank` picks the label with the highest "
                         "log-likelihood; format compliance is the share of free generations that are exactly a label. "
                         "Forgetting: mean change on general benchmarks (⚠ = drops general ability).")


def mixed_scoring_note(task_frame: pd.DataFrame) -> Paragraph | None:
    """Runs scored differently (e.g. an old generation-scored result beside ranked ones) are not comparable."""
    ok = task_frame[task_frame["status"] == "ok"]
    modes = sorted(set(ok["scoring"]))
    if len(modes) < 2:
        return None
    by_mode = "; ".join(f"{mode}: {', '.join(ok[ok['scoring'] == mode]['label'])}" for mode in modes)
    return Paragraph(f"Caution: these runs were scored in different ways ({by_mode}), so their scores are not "
                     "comparable. Re-run the older ones with `adapt compare` to score them the same way.")


def truncation_note(task_frame: pd.DataFrame) -> Paragraph | None:
    """Eval prompts longer than the model's context were scored on their last tokens only: say how many, per run."""
    ok = task_frame[task_frame["status"] == "ok"]
    cut = ok[ok["truncated_prompts"].fillna(0) > 0]
    if cut.empty:
        return None
    counts = "; ".join(f"{row['label']}: {int(row['truncated_prompts'])} of {fmt_count(row['n'])}"
                       for _, row in cut.iterrows())
    return Paragraph(f"Caution: some eval prompts were longer than the model's context and were scored on their "
                     f"last tokens only ({counts}).")


def short_error(error: str | None) -> str:
    """The line of an error that says what went wrong: the last line of a traceback, else the message."""
    text = (error or "no error recorded").strip()
    if text.startswith("Traceback"):
        text = [line for line in text.splitlines() if line.strip()][-1]
    return text if len(text) <= 500 else text[:497] + "…"


def failed_table(frame: pd.DataFrame) -> Table | None:
    failed = frame[frame["status"] != "ok"]
    if failed.empty:
        return None
    return Table(["task", "strategy", "run", "error"],
                 [[Cell(row["task"]), Cell(row["label"]), Cell(row["run_id"]), Cell(short_error(row["error"]))]
                  for _, row in failed.iterrows()])


# --- per-example predictions where strategies disagree -----------------------------------------------------


def read_predictions(results_dir: Path, run: RunResult) -> dict[str, dict[str, Any]] | None:
    """id -> prediction row of one run; None when the run wrote no predictions file."""
    if not run.predictions_file:
        return None
    path = paths.inside(results_dir, run.predictions_file)  # a run JSON from elsewhere must not read outside
    if not path.is_file():
        return None
    rows: dict[str, dict[str, Any]] = {}
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                rows[str(row["id"])] = row
            except (json.JSONDecodeError, KeyError, TypeError) as error:
                raise AdaptError(f"not a prediction row: {error}", file=path, line=number, field="id",
                                 hint="each line must be a JSON object with id, prompt, prediction, target, correct") from error
    return rows


def _clip(text: Any, limit: int = PROMPT_CHARS) -> str:
    text = " ".join(str(text if text is not None else DASH).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _verdict(row: dict[str, Any] | None) -> str:
    if row is None:
        return DASH
    mark = {True: "✓ ", False: "✗ "}.get(row.get("correct"), "")
    return mark + _clip(row.get("prediction"), 160)


def disagreement_table(results_dir: Path, runs: Sequence[RunResult], limit: int = EXAMPLES_PER_TASK) -> Table | None:
    """Examples where the strategies' verdicts differ (one right, another wrong), side by side; examples
    whose answers merely differ in wording fill up the rest. The bare input is shown (the scorer's `input`;
    else the shortest prompt), not the few-shot demonstrations, passages or chat template around it."""
    predictions = [(run, rows) for run in runs if (rows := read_predictions(results_dir, run))]
    if len(predictions) < 2:
        return None
    ids = list(predictions[0][1])
    ids += [key for _, rows in predictions[1:] for key in rows if key not in set(ids)]

    def outcomes(key: str, field_name: str) -> set[str]:
        return {json.dumps(rows[key].get(field_name), default=str) for _, rows in predictions if key in rows}

    split = [key for key in ids if len(outcomes(key, "correct")) > 1]
    reworded = [key for key in ids if key not in split and len(outcomes(key, "prediction")) > 1]
    chosen = (split + reworded)[:limit]
    if not chosen:
        return None
    table_rows = []
    for key in chosen:
        present = [rows[key] for _, rows in predictions if key in rows]
        prompt = next((row["input"] for row in present if row.get("input") is not None), None)
        prompt = prompt if prompt is not None else min((str(row.get("prompt", "")) for row in present), key=len)
        table_rows.append([Cell(key), Cell(_clip(prompt)), Cell(_clip(present[0].get("target"), 160))]
                          + [Cell(_verdict(rows.get(key))) for _, rows in predictions])
    return Table(["id", "input", "target"] + [run.label for run, _ in predictions], table_rows,
                 caption="✓ correct, ✗ wrong. Examples where the strategies disagree.")


# --- advisor prediction vs measurement ----------------------------------------------------------------------


def read_optional_json(path: Path) -> dict[str, Any] | None:
    """advice.json / compare.json: absent is fine (the section is left out); unreadable is the user's to fix."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise AdaptError(f"not valid JSON: {error.msg}", file=path, line=error.lineno,
                         hint="delete the file to leave its section out of the report") from error
    if not isinstance(data, dict):
        raise AdaptError("expected a JSON object", file=path, hint="delete the file to leave its section out")
    return data


def _predicted_memory_gb(estimate: dict[str, Any]) -> float | None:
    """The advisor writes `peak_memory_gib` (advisor.estimate.StrategyEstimate); `memory_gb` is accepted too."""
    for key in ("peak_memory_gib", "memory_gb"):
        if (value := _number_or_none(estimate.get(key))) is not None:
            return value
    return None


def _predicted_train_seconds(estimate: dict[str, Any]) -> float | None:
    """A zero estimate means nothing was sized (cpt without a corpus size), not an instant run: None."""
    hours = _number_or_none(estimate.get("train_hours"))
    return hours * 3600 if hours else None


def _off_by(measured_text: str, predicted: float | None, measured: float) -> str:
    """A measured figure with the prediction's relative error beside it: "1.90 GB (prediction +3%)"."""
    if not predicted or _missing(measured) or not measured:
        return measured_text
    return f"{measured_text} (prediction {(predicted - measured) / measured * 100:+.0f}%)"


def busy_machine_caution(runs: Sequence[RunResult]) -> Paragraph | None:
    """Times and latency measured while the load average exceeded the cores are inflated: say so, naming the runs."""
    busy = []
    for run in runs:
        load, cores = (run.env or {}).get("load_average"), (run.env or {}).get("cpu_count")
        if isinstance(load, list) and load and isinstance(cores, int) and load[0] > cores:
            busy.append(f"{run.label} ({run.task}: load {load[0]:g} on {cores} cores)")
    if not busy:
        return None
    return Paragraph("⚠ Caution: measured on a busy machine — the load average exceeded the number of CPU cores "
                     f"when these runs ended: {', '.join(busy)}. Their train time, latency and $ are inflated; "
                     "re-run them on an idle machine (`adapt compare PLAN --rerun --only NAME`) before comparing costs.")


def advisor_section(advice: dict[str, Any], frame: pd.DataFrame) -> Section:
    """What `adapt advise` predicted before the runs next to what the runs measured, per strategy kind
    (the best-scoring label of a kind stands for it; its mean over tasks when there are several)."""
    ranking = [entry for entry in advice.get("ranking") or [] if isinstance(entry, dict) and entry.get("strategy")]
    estimates = advice.get("estimates") or {}
    measured = frame[frame["status"] == "ok"].dropna(subset=["score"])
    per_kind = (measured.groupby(["strategy", "label"])
                .agg(score=("score", "mean"), peak_memory_mb=("peak_memory_mb", "mean"),
                     train_time_s=("train_time_s", "mean"), usd_train=("usd_train", "mean"),
                     usd_per_1m_queries=("usd_per_1m_queries", "mean"))
                .reset_index().sort_values("score", ascending=False).drop_duplicates("strategy")
                .set_index("strategy"))
    measured_rank = {kind: rank for rank, kind in enumerate(per_kind.index, start=1)}
    predicted_rank: dict[str, int] = {}
    for rank, entry in enumerate(ranking, start=1):
        predicted_rank.setdefault(entry["strategy"], rank)
    ruled_out = advice.get("ruled_out") if isinstance(advice.get("ruled_out"), dict) else {}
    kinds = list(predicted_rank)
    kinds += [kind for kind in list(estimates) + list(per_kind.index) if kind not in kinds]
    rows = []
    for kind in kinds:
        estimate = estimates.get(kind) or {}
        got = per_kind.loc[kind] if kind in per_kind.index else None
        memory, seconds = _predicted_memory_gb(estimate), _predicted_train_seconds(estimate)
        rows.append([
            Cell(kind),
            Cell("ruled out" if kind in ruled_out else str(predicted_rank.get(kind, DASH))),
            Cell(str(measured_rank[kind]) if kind in measured_rank else DASH),
            Cell(f"{memory:.1f} GB" if memory is not None else DASH),
            Cell(_off_by(fmt_megabytes(got["peak_memory_mb"]), memory and memory * 1024, got["peak_memory_mb"])
                 if got is not None else DASH),
            Cell(fmt_seconds(seconds) if seconds else DASH),
            Cell(_off_by(fmt_seconds(got["train_time_s"]), seconds, got["train_time_s"]) if got is not None else DASH),
            Cell(fmt_usd(_number_or_none(estimate.get("usd_per_1m_queries")))),
            Cell(fmt_usd(got["usd_per_1m_queries"]) if got is not None else DASH),
        ])
    blocks: list[Block] = []
    if ranking and len(measured_rank):
        top_predicted, top_measured = ranking[0]["strategy"], per_kind.index[0]
        verdict = ("The measurements agree." if top_predicted == top_measured
                   else f"The measurements disagree: {top_measured} scored best.")
        blocks.append(Paragraph(f"Before the runs the advisor ranked {top_predicted} first. {verdict}"))
    if advice.get("estimated_on"):
        blocks.append(Paragraph(f"Predicted time, memory and $ are for {advice['estimated_on']}; "
                                "measured ones for the machine in the reproducibility footer."))
    blocks.append(Table(["strategy", "advisor rank", "measured rank", "memory predicted", "memory measured",
                         "train time predicted", "train time measured", "$ / 1M queries predicted",
                         "$ / 1M queries measured"], rows,
                        caption="Measured rank: by primary metric (mean over tasks). Ruled out: a rule excluded "
                                "the strategy (listed below); a predicted time of — means the advisor had nothing to "
                                "size it by (e.g. no corpus size for cpt)."))
    fired = [entry for entry in advice.get("fired") or [] if isinstance(entry, dict)]
    if fired:
        blocks.append(Paragraph("Rules that fired:"))
        blocks.append(Bullets([f"{entry.get('id', DASH)}: {entry.get('because', '')}" for entry in fired]))
    return Section("What the advisor predicted vs what was measured", blocks)


# --- reproducibility ----------------------------------------------------------------------------------------


def reproducibility_section(runs: Sequence[RunResult], compare: dict[str, Any] | None) -> Section:
    """Enough to re-run and to trust: the command, versions, hardware, and each run's seed and digests."""
    blocks: list[Block] = []
    if compare:
        facts = [f"{name}: {compare[key]}" for key, name in (("command", "command"), ("plan_path", "plan"),
                                                              ("started_at", "started"))
                 if isinstance(compare.get(key), str)]
        if facts:
            blocks.append(Bullets(facts))
    environments = {json.dumps(run.env, sort_keys=True, default=str): run.env for run in runs if run.env}
    for env in environments.values():
        packages = env.get("packages") or {}
        hardware = ", ".join(str(part) for part in (env.get("platform"), f"{env['cpu_count']} CPUs" if env.get("cpu_count") else None,
                                                    env.get("gpu")) if part)
        items = [f"Python {env['python']}"] if env.get("python") else []
        items += [f"hardware: {hardware}"] if hardware else []
        items += ["packages: " + ", ".join(f"{name} {version}" for name, version in packages.items() if version)] if packages else []
        blocks.append(Bullets(items))
    rows = [[Cell(run.run_id), Cell(run.model or DASH), Cell(str(run.seed)), Cell(run.config_hash or DASH),
             Cell(", ".join(f"{key}={str(value)[:DIGEST_CHARS]}" for key, value in sorted((run.hashes or {}).items())
                            if value) or DASH)]
            for run in runs]
    blocks.append(Table(["run", "model", "seed", "config hash", "model and data digests"], rows))
    return Section("Reproducibility", blocks)


# --- assembling the report ----------------------------------------------------------------------------------


def task_section(task: str, frame: pd.DataFrame, runs: Sequence[RunResult], results_dir: Path,
                 colours: dict[str, str]) -> Section:
    task_frame = frame[frame["task"] == task]
    ok = [run for run in runs if run.task == task and run.status.value == "ok"]
    if task_frame["status"].ne("ok").all():
        return Section(f"Task: {task}", [Paragraph("Every run of this task failed: see Failed runs.")])
    blocks: list[Block] = [results_table(task_frame)]
    blocks[:0] = [note for note in (mixed_scoring_note(task_frame), truncation_note(task_frame)) if note]
    stem = "".join(char if char.isalnum() else "-" for char in task)
    figures = (
        ("accuracy-vs-cost", "Accuracy against cost; the dashed line joins the Pareto front (nothing is both cheaper and better).",
         plots.accuracy_vs_cost(task_frame, colours)),
        ("forgetting", "General benchmarks before (grey) and after adaptation; the number over a bar is the change.",
         plots.forgetting_bars(ok, colours)),
        ("latency-memory", "Serving latency (bar p50, whisker p95) and peak memory.",
         plots.latency_memory_bars(task_frame, colours)),
        ("loss", "Learning curves of the strategies that trained.", plots.loss_curves(ok, colours)),
    )
    blocks += [Plot(f"{stem}-{name}", caption, png) for name, caption, png in figures if png]
    examples = disagreement_table(results_dir, ok)
    if examples:
        blocks += [Paragraph("Where the strategies disagree:"), examples]
    return Section(f"Task: {task}", blocks)


def build_report(results_dir: str | Path, title: str | None = None) -> Report:
    """The whole report as a document; a pure function of the files in RESULTS_DIR."""
    results_dir = Path(results_dir)
    runs = load_runs(results_dir)
    if not runs:
        raise AdaptError("no runs found in this results directory", file=results_dir / "runs",
                         hint="point `adapt report` at the output directory of `adapt compare` (it holds runs/*.json)")
    frame = results_frame(runs)
    position = {run_id: index for index, run_id in enumerate(frame["run_id"])}
    runs = sorted(runs, key=lambda run: position[run.run_id])
    colours = plots.strategy_colours(list(zip(frame["label"], frame["strategy"])))
    advice = read_optional_json(results_dir / "advice.json")
    compare = read_optional_json(results_dir / "compare.json")
    tasks = list(dict.fromkeys(frame["task"]))
    tolerance = ((advice or {}).get("answers") or {}).get("forgetting_tolerance")  # as `adapt advise` was told
    sections = [Section("Recommendation", [Callout(recommend(frame, task, tolerance).sentences) for task in tasks])]
    caution = busy_machine_caution(runs)
    if caution:
        sections[0].blocks.append(caution)
    sections += [task_section(task, frame, runs, results_dir, colours) for task in tasks]
    failures = failed_table(frame)
    if failures:
        sections.append(Section("Failed runs", [failures]))
    if advice:
        sections.append(advisor_section(advice, frame))
    sections.append(reproducibility_section(runs, compare))
    models = ", ".join(sorted({run.model for run in runs if run.model})) or "model not recorded"
    ok = int((frame["status"] == "ok").sum())
    subtitle = (f"{len(runs)} run{'s' if len(runs) > 1 else ''} ({ok} ok) on {len(tasks)} "
                f"task{'s' if len(tasks) > 1 else ''} · {models}")
    return Report(title or f"adaptlab report: {results_dir.resolve().name}", subtitle, sections)


def report_command(results_dir: Path, out: Path | None = None, title: str | None = None) -> tuple[Path, Path]:
    """Write report.md (+ its PNGs under report_plots/) and a self-contained report.html; print their paths."""
    from rich.console import Console
    from rich.progress import Progress

    from reports.html import render_html
    from reports.markdown import PLOTS_DIR, render_markdown

    out = Path(out) if out is not None else Path(results_dir)
    with Progress(transient=True, console=Console(stderr=True)) as progress:
        step = progress.add_task("building report", total=3)
        report = build_report(results_dir, title)
        progress.advance(step)
        out.mkdir(parents=True, exist_ok=True)
        for plot in report.plots():
            write_bytes_atomic(out / PLOTS_DIR / f"{plot.name}.png", plot.png)
        markdown_path = out / "report.md"
        write_text_atomic(markdown_path, render_markdown(report))
        progress.advance(step)
        html_path = out / "report.html"
        write_text_atomic(html_path, render_html(report))
        progress.advance(step)
    print(markdown_path)
    print(html_path)
    return markdown_path, html_path


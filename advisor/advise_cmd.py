"""`adapt advise`: gather answers (prompts, YAML, --set), recommend, print the evidence, write the plan.

The plan is validated with the same parser `compare` uses and written atomically at the very end, so Ctrl-C
during the questionnaire leaves nothing half-written.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from advisor.engine import Recommendation, plan_strategies, recommend, rerank, training_device
from advisor.hardware import GPUS, checked_gpus
from advisor.questions import PATH_KEYS, QUESTIONS, Answers, Question, apply_sets, display, load_answers, missing_path, parse_value
from advisor.rules import describe
from base import registry
from base.errors import AdaptError
from base.results import load_runs


def advise_command(answers: Path | None, sets: list[str], results: Path | None, plan_out: Path,
                   as_json: bool, interactive: bool | None) -> None:
    given = load_answers(answers) if answers else Answers()
    given = apply_sets(given, sets)
    if interactive is None:
        interactive = answers is None and not sets and sys.stdin.isatty()
    if interactive:
        given = ask(given, Console(stderr=as_json))  # with --json, stdout carries only the JSON
    recommendation = recommend(given, plan_dir=Path(plan_out).parent)
    recommendation.warnings += [f"{reason}: the plan points at it; fix it before `adapt compare`."
                                for key in PATH_KEYS if (reason := missing_path(key, getattr(given, key)))]
    if results is not None:
        recommendation = rerank(recommendation, load_results(results))
    write_plan(recommendation.plan_yaml, plan_out)
    write_advice(recommendation, plan_out)
    if as_json:
        print(json.dumps({**recommendation.to_dict(), "plan": str(plan_out)}, indent=2))
    else:
        render(recommendation, plan_out, Console())


def load_results(results: Path) -> list:
    if not Path(results).is_dir():
        raise AdaptError("results directory not found", file=results, hint="pass the --output folder of `adapt compare`")
    return load_runs(results)


def write_plan(text: str, plan_out: Path) -> None:
    """Validate with compare's own parser first, then write atomically."""
    from base.plan import parse_plan
    from base.io import write_text_atomic

    parse_plan(text, source=str(plan_out), base_dir=Path(plan_out).resolve().parent)
    write_text_atomic(Path(plan_out), text)


def write_advice(recommendation: Recommendation, plan_out: Path) -> None:
    """The reasoning beside the plan (PLAN.advice.json): `compare` copies it into its results for the report."""
    from base.io import write_json_atomic

    write_json_atomic(Path(plan_out).with_suffix(".advice.json"), recommendation.to_dict())


# --- interactive questionnaire ----------------------------------------------------------------------------


def _prompt_line(question: Question, current: object) -> str:
    options = question.choices or (("yes", "no") if question.kind == "bool" else ())
    choices = f" [dim]({'/'.join(options)})[/]" if options else ""
    return f"[bold]{question.text}[/]{choices} [cyan]\\[{display(current)}][/] [dim]? for help[/]: "


def ask(answers: Answers, console: Console) -> Answers:
    """One question at a time, skipping those that do not apply; `?` shows help, bad input is asked again."""
    from dataclasses import replace

    console.print("[bold]adapt advise[/] — press Enter to keep the value in brackets, `?` for help, Ctrl-C to quit.")
    section = None
    for question in QUESTIONS:
        if not question.ask_if(answers):
            continue
        if question.section and question.section != section:
            section = question.section
            console.rule(section)
        while True:
            raw = console.input(_prompt_line(question, getattr(answers, question.key))).strip()
            if raw == "?":
                console.print(f"  [dim]{question.help}[/]")
                continue
            if raw == "":
                break
            try:
                value = parse_value(question, raw)
            except ValueError as error:
                console.print(f"  [red]{error}[/]")
                continue
            if missing := missing_path(question.key, value):
                console.print(f"  [red]{missing}[/] (relative to {Path.cwd()}); give an existing file, or `unknown`")
                continue
            answers = replace(answers, **{question.key: value})
            break
    return answers


# --- output ----------------------------------------------------------------------------------------------


def human_time(hours: float) -> str:
    if hours <= 0:
        return "—"
    seconds = hours * 3600
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min" if seconds < 5400 else f"{hours:.1f} h"


def dollars(value: float) -> str:
    return "—" if value == 0 else "<0.01" if value < 0.01 else f"{value:,.2f}"


def fits_summary(fits: list[str]) -> str:
    """The smallest GPU that fits, then '+' for every larger one (the table is ordered by memory)."""
    gpus = [name for name in GPUS if name in fits]
    text = f"{gpus[0]}+" if gpus else "no GPU"
    return text + (", CPU" if "CPU" in fits else "")


def band(percent: float) -> str:
    return f" ±{percent:.0f}%" if percent else ""


def checked_note() -> str:
    """Where the ± bands come from, and which GPUs the estimates were (not) held against."""
    checked = checked_gpus()
    unchecked = [name for name in GPUS if name not in checked["memory"]]
    return (f"± : the error 80% of reference runs stay within. GPU memory checked against published runs on "
            f"{', '.join(checked['memory'])}; time on {', '.join(checked['time'])} (bench/estimate_vs_published.py); "
            f"{', '.join(unchecked)} unchecked (band doubled). CPU: the demo's runs (bench/estimate_vs_measured.py).")


ESTIMATE_COLUMNS = ("#", "strategy", "score", "memory", "train time", "$ train", "$ / 1M queries", "fits on")


def estimate_rows(rec: Recommendation) -> list[list[str]]:
    """The ranked strategies with their estimates, as plain text (the terminal table and the web board's)."""
    rows = []
    for rank, (strategy, points) in enumerate(rec.ranking, 1):
        e = rec.estimates[strategy]
        per_gpu = "/GPU" if e.processes > 1 else ""
        rows.append([str(rank), strategy, f"{points:g}", f"{e.peak_memory_gib:.1f} GiB{per_gpu}{band(e.memory_band_pct)}",
                     human_time(e.train_hours) + (band(e.time_band_pct) if e.train_hours > 0 else ""),
                     dollars(e.usd_train), dollars(e.usd_per_1m_queries), fits_summary(e.fits)])
    return rows


def render(rec: Recommendation, plan_out: Path, console: Console) -> None:
    table = Table(title=f"Recommendation (time and $ on {rec.device})", title_justify="left")
    for column in ESTIMATE_COLUMNS:
        table.add_column(column, justify="right" if column in ("#", "score", "memory", "$ train", "$ / 1M queries") else "left")
    for rank, row in enumerate(estimate_rows(rec), 1):
        table.add_row(*row, style="bold green" if rank == 1 else None)
    console.print(table)
    console.print(f"[dim]{checked_note()}[/]")
    console.print(f"Top pick: [bold green]{rec.top}[/] — {describe(rec.top)}.")
    console.print("[bold]Why[/] (rules that fired, in order):")
    for rule in rec.fired:
        effects = ", ".join(f"{s} {v}" for s, v in rule.effect.items())
        console.print(f"  • [cyan]{rule.id}[/] — {rule.because} [dim]({effects})[/]")
    if not rec.fired:
        console.print("  [dim]none: answer more questions for a sharper ranking[/]")
    if rec.ruled_out:
        console.print("[bold]Ruled out:[/]")
        for strategy, reasons in rec.ruled_out.items():
            console.print(f"  ✗ {strategy}: {'; '.join(reasons)}")
    if rec.measured:
        render_measured(rec, console)
    for warning in rec.warnings:
        console.print(f"[yellow]warning:[/] {warning}")
    console.print(f"Plan written to [bold]{plan_out}[/] — run it with `adapt compare {plan_out}`.")
    for line in plan_summary(rec.plan_yaml, Path(plan_out)) + ([launch] if (launch := launch_summary(rec)) else []):
        console.print(f"  {line}", highlight=False)


def launch_summary(rec: Recommendation) -> str | None:
    """The plan's launch in a line, with the per-GPU peak of its heaviest training run; None for one process."""
    if not rec.launch:
        return None
    trained = [s for s in plan_strategies(rec.ranking) if registry.get(s).trains]
    peak = max(rec.estimates[s].peak_memory_gib for s in trained)
    config = f", {rec.launch['config_file']}" if "config_file" in rec.launch else ""
    return (f"launch: {rec.launch['num_processes']} processes, {rec.launch['distributed']}{config} (per-GPU peak "
            f"{peak:.1f} GiB of {training_device(rec.answers).memory_gib:g})")


def plan_summary(plan_yaml: str, plan_out: Path) -> list[str]:
    """What the written plan will do, in a few lines: runs, data sizes, forgetting checks, where results go."""
    import os

    import yaml

    plan = yaml.safe_load(plan_yaml)
    task = plan["tasks"][0]
    forgetting = plan.get("forgetting") or {}
    output = os.path.normpath(plan_out.parent / plan["output_dir"])
    trains = [s["strategy"] for s in plan["strategies"] if registry.get(s["strategy"]).changes_weights]
    lines = [f"runs: {', '.join(s['strategy'] for s in plan['strategies'])} on {plan['model']}",
             f"data: {task['name']} ({task['type']}), eval {task.get('eval_limit', 'all')} items"
             + (f", train up to {task['train_limit']} examples" if task.get("train_limit") and trains else "")]
    if forgetting.get("enabled"):
        benchmarks = ", ".join(forgetting.get("benchmarks") or ["every bundled benchmark"])
        lines.append(f"forgetting checks after {', '.join(trains)}: {benchmarks}, {forgetting.get('limit')} items each")
    lines.append(f"results: {output}/ — `adapt compare --dry-run {plan_out}` shows the estimated wall time")
    return lines


def render_measured(rec: Recommendation, console: Console) -> None:
    table = Table(title="Measured by compare (best first)", title_justify="left")
    for column in ("run", "metric", "value", "retained", "$ / 1M queries", "utility"):
        table.add_column(column)
    for row in rec.measured:
        retained = "—" if row["retained"] is None else f"{row['retained']:.2f}"
        usd = "—" if row["usd_per_1m_queries"] is None else f"{row['usd_per_1m_queries']:.2f}"
        table.add_row(row["label"], row["metric"], f"{row['value']:.3f}", retained, usd, f"{row['utility']:.3f}")
    console.print(table)
    for line in rec.overturned:
        console.print(f"[magenta]overturned:[/] {line}")

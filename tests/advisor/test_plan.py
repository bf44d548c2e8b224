"""The plan format: parsing, overrides, validation errors that name file, line and field, run identity."""
from __future__ import annotations

import pytest

from base import paths
from base.errors import AdaptError
from base.plan import load_plan, parse_plan, run_specs

PLAN = """\
name: t
model: some/model
tasks:
  - name: sst2
    type: classification
    train: train.jsonl
    eval: eval.jsonl
  - name: sciq
    type: qa
    eval: "{data}/sciq/eval.jsonl"
    corpus: docs
strategies:
  - zero_shot
  - strategy: few_shot
    k: 2
  - strategy: lora
    r: 4
    tasks: [sst2]
  - strategy: lora
    label: lora-r16
    r: 16
    tasks: [sst2]
  - strategy: rag
    tasks: [sciq]
"""


def test_parse_resolves_paths_and_shorthand(tmp_path):
    plan = parse_plan(PLAN, source="p.yaml", base_dir=tmp_path)
    assert plan.tasks[0].train == tmp_path / "train.jsonl"
    assert plan.tasks[1].eval == paths.data_dir() / "sciq" / "eval.jsonl"
    assert [s.name for s in plan.strategies] == ["zero_shot", "few_shot", "lora", "lora-r16", "rag"]
    pairs = [(t.name, s.name) for t, s in plan.runs()]
    assert pairs == [("sst2", "zero_shot"), ("sst2", "few_shot"), ("sst2", "lora"), ("sst2", "lora-r16"),
                     ("sciq", "zero_shot"), ("sciq", "few_shot"), ("sciq", "rag")]


def test_overrides_address_lists_by_name(tmp_path):
    plan = parse_plan(PLAN, base_dir=tmp_path, overrides=["seed=3", "tasks.sst2.eval_limit=50",
                                                          "strategies.lora-r16.r=32", "strategies.zero_shot.max_new_tokens=5"])
    assert plan.seed == 3
    assert plan.tasks[0].eval_limit == 50
    assert plan.strategies[3].r == 32
    assert plan.strategies[0].max_new_tokens == 5


@pytest.mark.parametrize("text, line, field", [
    (PLAN.replace("    r: 4\n", "    r: four\n"), 17, "strategies.2.r"),
    (PLAN.replace("    k: 2\n", "    k: 2\n    kk: 3\n"), 16, "strategies.1.kk"),
    (PLAN.replace("type: qa", "type: essay"), 9, "tasks.1.type"),
])
def test_validation_errors_name_line_and_field(text, line, field):
    with pytest.raises(AdaptError) as caught:
        parse_plan(text, source="plan.yaml")
    assert caught.value.file == "plan.yaml"
    assert caught.value.field == field
    assert caught.value.line == line


def test_yaml_syntax_error_has_line():
    with pytest.raises(AdaptError) as caught:
        parse_plan("tasks:\n  - name: [unclosed\n", source="bad.yaml")
    assert caught.value.line is not None and caught.value.file == "bad.yaml"


def test_unknown_task_in_strategy_and_duplicate_labels():
    with pytest.raises(AdaptError, match="unknown task"):
        parse_plan(PLAN.replace("tasks: [sciq]", "tasks: [nope]"))
    with pytest.raises(AdaptError, match="distinct `label`"):
        parse_plan(PLAN.replace("    label: lora-r16\n", ""))


def test_bad_override():
    with pytest.raises(AdaptError, match="key=value"):
        parse_plan(PLAN, overrides=["seed"])
    with pytest.raises(AdaptError, match="no list item"):
        parse_plan(PLAN, overrides=["strategies.nothing.r=1"])


def test_check_runnable_names_missing_pieces(tmp_path):
    (tmp_path / "train.jsonl").write_text("{}\n")
    (tmp_path / "eval.jsonl").write_text("{}\n")
    plan = parse_plan(PLAN.replace('"{data}/sciq/eval.jsonl"', "eval.jsonl").replace("    corpus: docs\n", ""),
                      base_dir=tmp_path, source="p.yaml")
    with pytest.raises(AdaptError) as caught:
        plan.check_runnable("p.yaml")
    assert caught.value.field == "tasks.sciq.train"  # few_shot needs a train split
    missing = parse_plan(PLAN, base_dir=tmp_path)
    with pytest.raises(AdaptError, match="not found"):
        missing.check_runnable()


def test_run_identity_changes_with_settings_and_data(tmp_path):
    (tmp_path / "train.jsonl").write_text('{"text": "a", "label": "x"}\n')
    (tmp_path / "eval.jsonl").write_text('{"text": "b", "label": "y"}\n')
    base = PLAN.split("  - name: sciq")[0] + "strategies: [zero_shot, lora]\n"
    first = {s.run_id for s in run_specs(parse_plan(base, base_dir=tmp_path), device="cpu")}
    again = {s.run_id for s in run_specs(parse_plan(base, base_dir=tmp_path, overrides=["name=renamed"]), device="cpu")}
    assert first == again  # the plan's name is not part of a run's identity
    changed = {s.run_id for s in run_specs(parse_plan(base, base_dir=tmp_path, overrides=["strategies.lora.r=2"]), device="cpu")}
    assert len(first & changed) == 1  # zero_shot unchanged, lora changed
    (tmp_path / "eval.jsonl").write_text('{"text": "c", "label": "y"}\n')
    assert not first & {s.run_id for s in run_specs(parse_plan(base, base_dir=tmp_path), device="cpu")}


def test_load_plan_missing_and_not_utf8(tmp_path):
    with pytest.raises(AdaptError, match="not found"):
        load_plan(tmp_path / "none.yaml")
    bad = tmp_path / "latin.yaml"
    bad.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(AdaptError, match="not UTF-8"):
        load_plan(bad)


def test_every_plan_problem_is_listed_with_its_line_and_field():
    text = PLAN.replace("    k: 2", "    k: -1").replace("    r: 4", "    r: 4\n    colour: red").replace("name: t\n", "name: t\nseed: x\n")
    with pytest.raises(AdaptError) as raised:
        parse_plan(text, source="p.yaml", base_dir=paths.home())
    message = raised.value.message
    assert message.startswith("3 problems:")
    assert "more problem(s)" not in message
    assert "p.yaml:2: field 'seed'" in message
    assert "field 'strategies.1.k': Input should be greater than or equal to 1" in message
    assert "field 'strategies.2.colour': unknown field" in message

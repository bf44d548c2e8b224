"""The plan `advise` writes: paths resolve where the user expects, sizes follow the answers, and `compare --dry-run`
shows how long the plan will take."""
from __future__ import annotations

import json
import re

import pytest
import yaml
from typer.testing import CliRunner

from advisor.engine import EVAL_ITEMS, from_plan_dir, recommend
from advisor.plan_time import plan_times
from advisor.questions import Answers
from base.plan import load_plan, run_specs
from base.progress import duration
from cli.app import app

runner = CliRunner()


def test_paths_are_written_relative_to_the_plan_folder_so_they_resolve_from_where_advise_ran(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    for name in ("train.jsonl", "eval.jsonl"):
        (tmp_path / "data" / name).write_text(json.dumps({"text": "fine", "label": "positive"}) + "\n")
    done = runner.invoke(app, ["advise", "-s", "task_name=reviews", "-s", "labelled_examples=600", "-s", "gpu=none",
                               "-s", "train=data/train.jsonl", "-s", "eval=data/eval.jsonl",
                               "--plan", "results/demo/advised-plan.yaml"])
    assert done.exit_code == 0, done.output
    written = yaml.safe_load((tmp_path / "results/demo/advised-plan.yaml").read_text())
    assert written["output_dir"] == "../reviews"
    plan = load_plan(tmp_path / "results/demo/advised-plan.yaml")
    assert plan.output_dir.resolve() == tmp_path / "results" / "reviews"
    assert plan.tasks[0].train.resolve() == tmp_path / "data" / "train.jsonl"
    assert plan.tasks[0].eval.resolve() == tmp_path / "data" / "eval.jsonl"


def test_from_plan_dir_keeps_placeholders_and_absolute_paths():
    assert from_plan_dir("{data}/sst2/eval.jsonl", "results/demo") == "{data}/sst2/eval.jsonl"
    assert from_plan_dir("/srv/eval.jsonl", "results/demo") == "/srv/eval.jsonl"
    assert from_plan_dir("results/sst2", ".") == "results/sst2"
    assert from_plan_dir("data/x.jsonl", "a/b") == "../../data/x.jsonl"


def plan_of(**answers) -> dict:
    return yaml.safe_load(recommend(Answers(task_name="t", labelled_examples=600, gpu="none", **answers)).plan_yaml)


def test_eval_limit_follows_the_time_budget():
    fewest, default, most = EVAL_ITEMS
    assert plan_of()["tasks"][0]["eval_limit"] == default  # no budget: the middle figure
    tight = plan_of(budget_hours=0.05)["tasks"][0]["eval_limit"]
    roomy = plan_of(budget_hours=1)["tasks"][0]["eval_limit"]
    assert fewest <= tight < roomy <= most
    assert plan_of(budget_hours=100)["tasks"][0]["eval_limit"] == most


def test_cpu_plan_runs_short_forgetting_checks_and_gpu_plan_all_benchmarks():
    cpu = plan_of()["forgetting"]
    assert cpu["limit"] == 25 and len(cpu["benchmarks"]) == 3
    gpu = yaml.safe_load(recommend(Answers(task_name="t", labelled_examples=600, gpu="L4")).plan_yaml)["forgetting"]
    assert gpu["limit"] == 50 and "benchmarks" not in gpu  # the schema's default: every bundled benchmark


@pytest.fixture()
def tiny_plan(tmp_path, tiny_model_dir):
    rows = [{"text": f"the movie was {'great' if i % 2 else 'awful'} {i}", "label": "positive" if i % 2 else "negative"}
            for i in range(40)]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:32]))
    (tmp_path / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[32:]))
    path = tmp_path / "plan.yaml"
    path.write_text(f"""\
model: {tiny_model_dir}
output_dir: out
tasks: [{{name: toy, type: classification, train: train.jsonl, eval: eval.jsonl}}]
strategies: [zero_shot, {{strategy: few_shot, k: 2}}, {{strategy: lora, epochs: 2}}, {{strategy: full_ft, epochs: 2}}]
forgetting: {{enabled: true, benchmarks: [arc_easy], limit: 10}}
""")
    return path


def test_dry_run_prints_each_runs_time_and_the_total(tiny_plan):
    done = runner.invoke(app, ["compare", str(tiny_plan), "--dry-run"])
    assert done.exit_code == 0, done.output
    plan = load_plan(tiny_plan)
    times = plan_times(plan, run_specs(plan, device="cpu"))
    assert "est. time" in done.output
    flat = " ".join(done.output.split())
    assert f"estimated wall time: {duration(sum(t.total_s for t in times))} for 4 run(s)" in flat
    for time in times:
        assert re.search(rf"{time.run_id} .* {re.escape(duration(time.total_s))}", flat)


def test_only_takes_a_comma_separated_list_as_well_as_repeats(tiny_plan):
    for only in (["--only", "zero_shot,lora"], ["--only", "zero_shot", "--only", "lora"]):
        done = runner.invoke(app, ["compare", str(tiny_plan), "--dry-run", *only])
        assert done.exit_code == 0, done.output
        assert "for 2 run(s)" in " ".join(done.output.split())


def test_plan_time_counts_what_each_run_does(tiny_plan):
    plan = load_plan(tiny_plan)
    zero, few, lora, full = plan_times(plan, run_specs(plan, device="cpu"))
    assert zero.train_s == few.train_s == 0 and zero.forgetting_s == 0
    assert few.scoring_s > zero.scoring_s  # demonstrations make every prompt longer
    assert full.train_s > lora.train_s > 0  # full fine-tuning also computes weight gradients
    assert lora.forgetting_s == pytest.approx(2 * full.forgetting_s)  # the base model's baseline is counted once
    shorter = load_plan(tiny_plan, ["strategies.lora.max_steps=1"])
    assert plan_times(shorter, run_specs(shorter, device="cpu"))[2].train_s < lora.train_s


def test_plan_time_sizes_the_new_methods_from_their_own_data(tmp_path, tiny_model_dir):
    """feature_based is one forward pass over the train inputs; dpo reads its preference pairs (no train file needed),
    each pair two rows, through a policy and a reference: dearer than LoRA on as many examples."""
    rows = [{"text": f"the movie was {'great' if i % 2 else 'awful'} {i}", "label": "positive" if i % 2 else "negative"}
            for i in range(40)]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:32]))
    (tmp_path / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[32:]))
    (tmp_path / "prefs.jsonl").write_text("".join(json.dumps({"prompt": r["text"], "chosen": r["label"], "rejected": "x"})
                                                  + "\n" for r in rows[:32]))
    (tmp_path / "plan.yaml").write_text(f"""\
model: {tiny_model_dir}
tasks:
  - {{name: toy, type: classification, train: train.jsonl, eval: eval.jsonl}}
  - {{name: prefs, type: classification, eval: eval.jsonl, preferences: prefs.jsonl}}
strategies: [{{strategy: lora, tasks: [toy]}}, {{strategy: feature_based, tasks: [toy]}}, {{strategy: dpo, tasks: [prefs]}}]
forgetting: {{enabled: false}}
""")
    plan = load_plan(tmp_path / "plan.yaml")
    plan.check_runnable()
    lora, features, dpo = plan_times(plan, run_specs(plan, device="cpu"))
    assert 0 < features.train_s < lora.train_s / 1.5  # 2N a token against LoRA's 4N
    assert dpo.train_s > 2 * lora.train_s  # two rows a pair, x1.5 for the reference model's forward


def test_advised_plan_points_dpo_at_the_preference_pairs_given():
    plan = plan_of(preferences="data/prefs.jsonl")
    assert "dpo" in [s["strategy"] for s in plan["strategies"]]
    assert plan["tasks"][0]["preferences"] == "data/prefs.jsonl"
    assert "dpo" not in [s["strategy"] for s in plan_of()["strategies"]]  # no pairs: ruled out


def test_feature_based_is_ruled_out_for_questions():
    recommendation = recommend(Answers(task_type="qa", labelled_examples=600, gpu="none"))
    assert "feature_based" in recommendation.ruled_out
    assert "feature_based" in [s for s, _ in recommend(Answers(task_type="classification", labelled_examples=600)).ranking]

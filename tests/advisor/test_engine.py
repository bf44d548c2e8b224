"""The engine end to end: plans that validate with compare's parser, budget-capped steps, missing answers,
and the evidence loop re-ranking with measured results."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from advisor import engine
from base import paths
from advisor import estimate as est
from advisor.engine import plan_strategies, recommend, rerank
from base.plan import parse_plan
from advisor.questions import Answers, load_answers
from base.results import RunResult, RunStatus

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "advisor"


def plan_of(answers: Answers):
    recommendation = recommend(answers)
    return recommendation, parse_plan(recommendation.plan_yaml, source="advised.yaml")


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_answers_give_a_valid_plan_on_the_bundled_data(path):
    recommendation, plan = plan_of(load_answers(path))
    task = plan.tasks[0]
    assert str(task.eval).startswith(str(paths.data_dir()))  # `{data}` expanded by parse_plan
    assert [s.strategy for s in plan.strategies][0] == "zero_shot"
    assert recommendation.top.split("+")[0] in [s.strategy for s in plan.strategies]
    assert not [w for w in recommendation.warnings if "placeholder" in w or "edit it" in w]


def test_demo_answers_recommend_an_adapter_and_knowledge_answers_recommend_rag():
    demo, _ = plan_of(load_answers(CONFIGS / "demo_answers.yaml"))
    knowledge, plan = plan_of(load_answers(CONFIGS / "knowledge_answers.yaml"))
    assert demo.top == "lora"
    assert knowledge.top == "rag"
    assert plan.tasks[0].corpus is not None


def test_empty_answers_still_give_a_plan_and_say_what_is_missing():
    recommendation, plan = plan_of(Answers())
    assert recommendation.top == "few_shot"
    assert any("questions unanswered" in w for w in recommendation.warnings)
    assert any("data/eval.jsonl" in w for w in recommendation.warnings)
    assert plan.tasks[0].type == "classification"
    assert "assumed" in recommendation.device


def test_combinations_run_as_their_parts():
    assert plan_strategies([("rag+lora", 8.0), ("lora", 6.0), ("rag", 2.0)]) == ["zero_shot", "rag", "lora"]
    assert plan_strategies([("few_shot", 2.0), ("cpt", 0.0), ("rag", -1.0)]) == ["zero_shot", "few_shot"]
    recommendation, plan = plan_of(Answers(citations=True, has_corpus=True, need="format", labelled_examples=500,
                                           corpus="docs", train="t.jsonl", eval="e.jsonl"))
    assert recommendation.top == "rag+lora"
    names = [s.strategy for s in plan.strategies]
    assert {"rag", "lora"} <= set(names) and len(names) == len(set(names))


def test_plan_settings_follow_the_answers():
    _, plan = plan_of(Answers(labelled_examples=5000, gpu="H100", avg_example_tokens=300, context_window=1024))
    lora = next(s for s in plan.strategies if s.strategy == "lora")
    # the longest of ~300-token examples (chat format: ~350) runs to ~670 tokens: rows of 1024 hold it whole
    assert lora.r == 16 and lora.alpha == 32 and lora.max_length == 1024 and lora.epochs == 1
    _, long = plan_of(Answers(labelled_examples=5000, gpu="H100", avg_example_tokens=1500, context_window=2048))
    assert next(s for s in long.strategies if s.strategy == "lora").max_length == 2048  # 4096 needed: the context caps it
    _, short = plan_of(Answers(labelled_examples=5000, gpu="H100", avg_example_tokens=25, task_type="classification"))
    assert next(s for s in short.strategies if s.strategy == "lora").max_length == 256
    _, small = plan_of(Answers(labelled_examples=200, gpu="H100"))
    assert next(s for s in small.strategies if s.strategy == "lora").epochs == 3


def test_budget_caps_training_steps_in_proportion():
    answers = Answers(labelled_examples=200_000, gpu="L4", budget_hours=0.001, avg_example_tokens=100)
    recommendation, plan = plan_of(answers)
    lora = next(s for s in plan.strategies if s.strategy == "lora")
    estimate = recommendation.estimates["lora"]
    assert estimate.train_hours > 0.01
    full_steps = 200_000 * (1 - engine.HELD_OUT) * 1.0 / lora.batch_size  # held-out share; batch_size examples a step
    assert lora.max_steps == int(full_steps * 0.001 / estimate.train_hours)
    assert any("over the 0.001 h budget" in w for w in recommendation.warnings)
    _, by_dollars = plan_of(Answers(labelled_examples=200_000, gpu="L4", budget_usd=0.0008, avg_example_tokens=100))  # 0.001 h at $0.80/h
    assert next(s for s in by_dollars.strategies if s.strategy == "lora").max_steps == lora.max_steps
    _, roomy = plan_of(Answers(labelled_examples=200_000, gpu="L4", budget_hours=100))
    assert all(getattr(s, "max_steps", None) is None for s in roomy.strategies)


def test_checkpointing_is_switched_on_only_where_it_makes_a_strategy_fit():
    _, plan = plan_of(Answers(labelled_examples=5000, gpu="T4", model="mistral-7b", avg_example_tokens=1500))
    qlora = next(s for s in plan.strategies if s.strategy == "qlora")
    assert qlora.grad_checkpointing is True
    # 1500-token examples: checkpointing alone does not fit a T4; fewer examples a micro-batch, the same a step
    assert qlora.batch_size < 8 and qlora.batch_size * qlora.grad_accum == 8
    _, roomy = plan_of(Answers(labelled_examples=5000, gpu="H200"))
    assert not any(getattr(s, "grad_checkpointing", False) for s in roomy.strategies)


def test_recommendation_is_json_serialisable():
    answers = load_answers(CONFIGS / "demo_answers.yaml")
    recommendation = recommend(answers)
    data = json.loads(json.dumps(recommendation.to_dict()))
    assert data["top"] == "lora" and data["ranking"][0]["strategy"] == "lora"
    assert data["estimates"]["few_shot"]["extra_prompt_tokens"] == 4 * answers.avg_example_tokens
    assert data["estimates"]["lora"]["extra_prompt_tokens"] == 0
    assert data["answers"]["labelled_examples"] == 600


def run(label: str, strategy: str, accuracy: float, retained: float | None = None, status=RunStatus.ok) -> RunResult:
    return RunResult(run_id=f"sst2__{label}__0", task="sst2", strategy=strategy, label=label, status=status, config={},
                     config_hash="0", metrics={"accuracy": accuracy}, cost={"usd_per_1m_queries": 5.0},
                     forgetting={"retained": retained} if retained is not None else {})


def test_measurements_overturn_the_prior_and_say_so():
    prior = recommend(Answers(labelled_examples=600, need="skill", has_corpus=True))
    assert prior.top == "lora"
    measured = rerank(prior, [run("lora", "lora", 0.62), run("rag", "rag", 0.71), run("zero_shot", "zero_shot", 0.5),
                              run("full_ft", "full_ft", 0.99, status=RunStatus.failed)])
    assert measured.top == "rag"
    assert measured.overturned == ["lora was ranked 1st but measured accuracy 0.62 < rag 0.71"]
    assert [r["label"] for r in measured.measured] == ["rag", "lora", "zero_shot"]  # failed runs are ignored
    assert {s for s, _ in measured.ranking} == {s for s, _ in prior.ranking}


def test_measured_forgetting_counts_when_tolerance_is_low():
    answers = Answers(labelled_examples=600, forgetting_tolerance="low")
    runs = [run("full_ft", "full_ft", 0.80, retained=0.70), run("lora", "lora", 0.76, retained=0.99)]
    assert rerank(recommend(answers), runs).measured[0]["label"] == "lora"
    tolerant = Answers(labelled_examples=600, forgetting_tolerance="high")
    assert rerank(recommend(tolerant), runs).measured[0]["label"] == "full_ft"


def test_confirmed_prior_is_not_reported_as_overturned():
    prior = recommend(Answers(labelled_examples=600))
    measured = rerank(prior, [run("lora", "lora", 0.8), run("few_shot", "few_shot", 0.7)])
    assert measured.top == "lora" and measured.overturned == []


def test_no_successful_runs_leaves_the_ranking_and_warns():
    prior = recommend(Answers(labelled_examples=600))
    again = rerank(prior, [run("lora", "lora", 0.8, status=RunStatus.failed)])
    assert again.ranking == prior.ranking
    assert any("no successful runs" in w for w in again.warnings)


@pytest.mark.integration
def test_shipped_answers_plans_are_runnable_against_the_bundled_data():
    for name in ("sst2", "sciq"):
        if not (paths.data_dir() / name).exists():
            pytest.skip(f"bundled dataset {name} not provisioned (`adapt data ensure`)")
    for path in sorted(CONFIGS.glob("*.yaml")):
        _, plan = plan_of(load_answers(path))
        plan.check_runnable(str(path))  # every file exists and every strategy has what it needs
        assert yaml.safe_load(recommend(load_answers(path)).plan_yaml)["model"] == "smollm2-135m-instruct"


def test_evidence_loop_warns_when_a_task_mixes_scoring_modes():
    ranked = run("lora", "lora", 0.8)
    ranked.metrics["scoring"] = "rank"
    old = run("zero_shot", "zero_shot", 0.44)  # schema 1: generation-scored classification
    reranked = rerank(recommend(Answers(labelled_examples=600, need="skill")), [ranked, old])
    assert any("scored in different ways" in w for w in reranked.warnings)
    both_ranked = run("zero_shot", "zero_shot", 0.79)
    both_ranked.metrics["scoring"] = "rank"
    reranked = rerank(recommend(Answers(labelled_examples=600, need="skill")), [ranked, both_ranked])
    assert not any("scored in different ways" in w for w in reranked.warnings)

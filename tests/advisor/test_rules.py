"""One case per flowchart leaf: the answers, the strategy they put on top, the rule that decided it, and a
counterfactual (one answer changed) that gives another top pick — so each rule is shown to be decisive."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from advisor.engine import recommend
from advisor.questions import Answers
from advisor.rules import OUT, RULES, contradictions, prior, strategies

LEAVES = [
    # (decisive rule, answers, expected top, counterfactual change, top after the change)
    ("no_labels", {"labelled_examples": 0, "has_corpus": False}, "zero_shot", {"labelled_examples": None}, "few_shot"),
    ("few_labels", {"labelled_examples": 40, "need": "skill"}, "few_shot", {"labelled_examples": None}, "lora"),
    ("hundreds_of_labels", {"labelled_examples": 300}, "lora", {"labelled_examples": None}, "few_shot"),
    ("thousands_of_labels", {"labelled_examples": 5000}, "lora", {"labelled_examples": None}, "few_shot"),
    ("lots_of_labels", {"labelled_examples": 100_000, "gpu": "H100", "forgetting_tolerance": "high"}, "full_ft",
     {"labelled_examples": 5000}, "lora"),
    ("weak_base", {"zero_shot_accuracy": 0.3}, "lora", {"zero_shot_accuracy": 0.6}, "few_shot"),
    ("strong_base", {"zero_shot_accuracy": 0.9}, "zero_shot", {"zero_shot_accuracy": 0.6}, "few_shot"),
    ("volatile_knowledge", {"need": "knowledge", "knowledge_changes": "daily", "has_corpus": True}, "rag",
     {"knowledge_changes": None}, "few_shot"),
    ("stable_knowledge", {"need": "knowledge", "knowledge_changes": "never", "has_corpus": True}, "rag",
     {"knowledge_changes": None}, "few_shot"),
    ("citations", {"citations": True, "has_corpus": True}, "rag", {"citations": False}, "few_shot"),
    ("behaviour", {"need": "style"}, "lora", {"need": None}, "few_shot"),
    ("strict_format", {"strict_format": True}, "lora", {"strict_format": False}, "few_shot"),
    ("facts_and_behaviour", {"citations": True, "has_corpus": True, "need": "format", "labelled_examples": 500}, "rag+lora",
     {"citations": False}, "lora"),
    ("new_vocabulary", {"new_vocabulary": True, "has_corpus": True, "corpus_tokens": 50_000_000}, "cpt+lora",
     {"new_vocabulary": False}, "few_shot"),
    ("hardware_fit", {"labelled_examples": 5000, "gpu": "T4", "model": "mistral-7b"}, "qlora", {"gpu": "A100-80GB"}, "lora"),
    ("cpu_only", {"labelled_examples": 100_000, "gpu": "none", "forgetting_tolerance": "high"}, "lora", {"gpu": "H100"}, "full_ft"),
    ("small_budget", {"labelled_examples": 100_000, "gpu": "H100", "forgetting_tolerance": "high", "budget_usd": 10}, "lora",
     {"budget_usd": None}, "full_ft"),
    ("tight_latency", {"latency_ms": 200}, "lora", {"latency_ms": None}, "few_shot"),
    ("high_volume", {"queries_per_day": 1_000_000}, "lora", {"queries_per_day": None}, "few_shot"),
    ("low_forgetting_tolerance", {"forgetting_tolerance": "low", "labelled_examples": 300}, "few_shot",
     {"forgetting_tolerance": "medium"}, "lora"),
    ("ship_in_days", {"time_to_market": "days", "labelled_examples": 300}, "few_shot", {"time_to_market": "weeks"}, "lora"),
    ("noisy_labels", {"labelled_examples": 300, "label_quality": "low"}, "few_shot", {"label_quality": "high"}, "lora"),
    ("short_context", {"context_window": 1024}, "lora", {"context_window": 8192}, "few_shot"),
    ("preference_pairs", {"preferences": "prefs.jsonl"}, "dpo", {"preferences": None}, "few_shot"),
    ("classify_cheaply", {"task_type": "classification", "budget_hours": 0.5}, "feature_based", {"budget_hours": None},
     "few_shot"),
]


@pytest.mark.parametrize("rule_id, answers, top, change, top_after", LEAVES, ids=[leaf[0] for leaf in LEAVES])
def test_each_leaf_decides_the_top_recommendation(rule_id, answers, top, change, top_after):
    recommendation = recommend(Answers(**answers))
    assert recommendation.top == top, recommendation.ranking[:3]
    assert rule_id in [rule.id for rule in recommendation.fired]
    counterfactual = recommend(Answers(**{**answers, **change}))
    assert counterfactual.top == top_after, counterfactual.ranking[:3]
    assert rule_id not in [rule.id for rule in counterfactual.fired]


def test_every_rule_that_can_decide_the_top_has_a_leaf():
    undecisive = {"no_corpus", "small_corpus", "private_data", "high_forgetting_tolerance",  # only shift or rule out
                  "not_classification", "deep_prompts", "gated_instruction_adapter", "last_layers", "full_rank_low_memory",
                  "no_preference_pairs"}
    covered = {leaf[0] for leaf in LEAVES}
    assert {rule.id for rule in RULES} - covered == undecisive


def test_rule_table_is_well_formed_and_fits_on_one_screen():
    ids = [rule.id for rule in RULES]
    assert len(ids) == len(set(ids))
    for rule in RULES:
        assert set(rule.effect) <= set(strategies()), rule.id
        assert all(v == OUT or isinstance(v, (int, float)) for v in rule.effect.values())
        assert 20 < len(rule.because) < 130 and rule.because.endswith("."), rule.id
    assert set(prior()) == set(strategies())
    source = (Path(__file__).resolve().parents[2] / "advisor" / "rules.py").read_text()
    table = re.search(r"^RULES: .*?^\)$", source, re.S | re.M).group(0)
    assert 40 <= len(table.splitlines()) <= 70  # two lines a rule: 32 rules at most


def test_ruled_out_strategies_are_absent_from_the_ranking_with_their_reason():
    recommendation = recommend(Answers(labelled_examples=0, has_corpus=False))
    ranked = [s for s, _ in recommendation.ranking]
    for strategy in ("rag", "cpt", "lora", "full_ft", "few_shot", "rag+lora"):
        assert strategy not in ranked
        assert recommendation.ruled_out[strategy]
    assert recommendation.ruled_out["rag"][0].startswith("no_corpus:")
    assert ranked == ["zero_shot"]


def test_contradictions_are_reported_as_warnings():
    answers = Answers(need="knowledge", knowledge_changes="daily", has_corpus=False, citations=True)
    messages = contradictions(answers)
    assert any("changes daily but there is no corpus" in m for m in messages)
    assert any("Citations" in m for m in messages)
    recommendation = recommend(answers)
    assert all(m in recommendation.warnings for m in messages)
    assert "rag" in recommendation.ruled_out  # the contradiction does not resurrect RAG


def test_a_zero_budget_counts_as_small_and_an_unknown_one_does_not():
    fired = lambda answers: [rule.id for rule in recommend(answers).fired]  # noqa: E731
    assert "small_budget" in fired(Answers(budget_usd=0))
    assert "small_budget" in fired(Answers(budget_hours=0.5))
    assert "small_budget" not in fired(Answers(budget_usd=None, budget_hours=None))
    assert "small_budget" not in fired(Answers(budget_usd=500, budget_hours=10))


def test_consistent_answers_raise_no_contradiction():
    assert contradictions(Answers(need="knowledge", knowledge_changes="daily", has_corpus=True, citations=True)) == []
    assert contradictions(Answers()) == []

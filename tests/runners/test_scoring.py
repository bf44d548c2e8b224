"""The shared scorer: metric functions on known inputs, and evaluate() end to end on a tiny model."""
from __future__ import annotations

import pytest

from base.plan import TaskSpec
from base.data import Example
from runners.scoring import (bootstrap_ci, choice_logprobs, evaluate, exact_match, macro_f1, match_label,
                             normalize_answer, stop_text, token_f1)


def test_squad_normalisation_and_metrics():
    assert normalize_answer("The  Eiffel-Tower!") == "eiffeltower"
    assert exact_match("the Paris.", ["Paris"]) == 1.0
    assert exact_match("Lyon", ["Paris", "paris"]) == 0.0
    assert token_f1("big red dog", ["red dog"]) == pytest.approx(0.8)
    assert token_f1("cat", ["red dog", "cat"]) == 1.0


def test_label_matching_prefers_exact_then_first_mention():
    labels = ["negative", "positive"]
    assert match_label("Positive", labels) == "positive"
    assert match_label("I think it is negative, not positive", labels) == "negative"
    assert match_label("nonpositive", labels) is None  # whole words only
    assert match_label("no idea", labels) is None


def test_macro_f1_known_value():
    gold = ["a", "a", "b", "b"]
    predicted = ["a", "b", "b", None]
    # a: tp1 fp0 fn1 -> 2/3; b: tp1 fp1 fn1 -> 1/2
    assert macro_f1(predicted, gold, ["a", "b"]) == pytest.approx((2 / 3 + 1 / 2) / 2)


def test_bootstrap_interval_brackets_the_mean_and_narrows_with_n():
    small = [1, 0] * 10
    large = [1, 0] * 500
    lo_s, hi_s = bootstrap_ci(small, seed=1)
    lo_l, hi_l = bootstrap_ci(large, seed=1)
    assert lo_s < 0.5 < hi_s and lo_l < 0.5 < hi_l
    assert (hi_l - lo_l) < (hi_s - lo_s) / 3
    assert bootstrap_ci([1, 1, 1]) == (1.0, 1.0)


def test_stop_text_cuts_at_end_of_turn(tiny_tokenizer):
    assert stop_text(" positive<|im_end|>\nmore", tiny_tokenizer) == "positive"
    assert stop_text("Paris\nQuestion: next", tiny_tokenizer) == "Paris"


def _examples(kind):
    if kind == "classification":
        return [Example(id=str(i), prompt=f"text {i}", target=["negative", "positive"][i % 2]) for i in range(6)]
    if kind == "qa":
        return [Example(id=str(i), prompt="what is the capital of france?", target="paris", answers=["paris"]) for i in range(3)]
    return [Example(id=str(i), prompt="water boils at", target="one hundred", choices=["one hundred", "ten"]) for i in range(3)]


@pytest.mark.parametrize("kind, primary", [("classification", "accuracy"), ("qa", "f1"), ("multiple_choice", "accuracy")])
def test_evaluate_on_tiny_model(tiny_model, tiny_tokenizer, kind, primary):
    task = TaskSpec(name="t", type=kind, eval="e.jsonl")
    examples = _examples(kind)
    prompts = [f"<|im_start|>user\n{e.prompt}<|im_end|>\n<|im_start|>assistant\n" for e in examples]
    advanced = []
    result = evaluate(tiny_model, tiny_tokenizer, task, examples, prompts, ["negative", "positive"], max_new_tokens=4,
                      batch_size=4, progress=advanced.append)
    assert result.primary_metric == primary
    assert 0.0 <= result.metrics[primary] <= 1.0
    assert result.metrics["n"] == len(examples)
    assert sum(advanced) == len(examples)
    assert len(result.predictions) == len(examples)
    assert {"id", "prediction", "target", "correct", "prompt_tokens"} <= set(result.predictions[0])
    assert result.prompt_tokens_per_query == pytest.approx(
        sum(len(tiny_tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts) / len(prompts))
    assert result.latency_p50_s is not None and result.latency_p95_s >= result.latency_p50_s
    if kind != "multiple_choice":
        assert 0 < result.completion_tokens_per_query <= 4


def test_batched_generation_matches_one_by_one(tiny_model, tiny_tokenizer):
    """Left padding must not change greedy answers."""
    from runners.scoring import generate

    prompts = ["the movie was", "a terrible boring film with awful dialogue and", "question:"]
    batched, _ = generate(tiny_model, tiny_tokenizer, prompts, max_new_tokens=5, batch_size=3)
    single = [generate(tiny_model, tiny_tokenizer, [p], max_new_tokens=5, batch_size=1)[0][0] for p in prompts]
    assert batched == single


def test_choice_logprobs_prefers_the_trained_continuation(tiny_tokenizer):
    """A model trained a few steps on one sentence ranks that continuation first."""
    import torch

    from tests.conftest import build_tiny_model

    model = build_tiny_model(tiny_tokenizer)
    ids = tiny_tokenizer("water boils at one hundred degrees", return_tensors="pt")["input_ids"]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(30):
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    scores = choice_logprobs(model.eval(), tiny_tokenizer, "water boils at", [" one hundred degrees", " ten plants"])
    assert scores[0][0] > scores[1][0]

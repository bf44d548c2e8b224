"""The shared scorer: metric functions on known inputs, and evaluate() end to end on a tiny model."""
from __future__ import annotations

import pytest

from base.data import Example
from base.plan import TaskSpec
from runners.scoring import (bootstrap_ci, calibrate, evaluate, rank_choices, exact_match, macro_f1, match_label,
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


@pytest.mark.parametrize("kind, primary, scoring", [("classification", "accuracy", "rank"), ("classification", "accuracy", "generate"),
                                                     ("qa", "f1", "generate"), ("multiple_choice", "accuracy", "rank")])
def test_evaluate_on_tiny_model(tiny_model, tiny_tokenizer, one_thread, kind, primary, scoring):
    task = TaskSpec(name="t", type=kind, eval="e.jsonl", scoring=scoring)
    examples = _examples(kind)
    prompts = [f"<|im_start|>user\n{e.prompt}<|im_end|>\n<|im_start|>assistant\n" for e in examples]
    advanced = []
    result = evaluate(tiny_model, tiny_tokenizer, task, examples, prompts, ["negative", "positive"], max_new_tokens=4,
                      batch_size=4, progress=advanced.append)
    assert result.primary_metric == primary
    assert result.metrics["scoring"] == scoring
    assert 0.0 <= result.metrics[primary] <= 1.0
    assert result.metrics["n"] == len(examples)
    assert sum(advanced) == len(examples)
    assert len(result.predictions) == len(examples)
    assert {"id", "prediction", "target", "correct", "prompt_tokens"} <= set(result.predictions[0])
    assert result.prompt_tokens_per_query == pytest.approx(
        sum(len(tiny_tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts) / len(prompts))
    assert result.latency_p50_s is not None and result.latency_p95_s >= result.latency_p50_s
    assert 0 < result.completion_tokens_per_query <= 4
    if scoring == "rank":  # every prediction is a label/choice, and free generations were sampled for compliance
        assert all(row["prediction"] in (e.choices or ["negative", "positive"]) for row, e in zip(result.predictions, examples))
        assert result.metrics["format_compliance_n"] == len(examples)
        assert "raw" in result.predictions[0]


def _hand_logprob(model, tokenizer, prompt: str, continuation: str) -> float:
    """Sum log p(continuation | prompt), one unpadded forward over the whole text: the definition, no batching."""
    import torch

    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    cont_ids = tokenizer(continuation, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([prompt_ids + cont_ids])).logits[0].float()
    logprobs = torch.log_softmax(logits, -1)
    return float(sum(logprobs[len(prompt_ids) - 1 + i, token] for i, token in enumerate(cont_ids)))


def test_rank_scores_equal_a_hand_computation_one_and_multi_token(tiny_model, tiny_tokenizer, one_thread):
    """One-token label sets (one forward per prompt) and multi-token choices (a row each) both give the exact
    log-likelihood, and the argmax is the hand-computed argmax."""
    model = tiny_model.eval()
    one_token = ["the", "answer"]
    assert all(len(tiny_tokenizer(" " + label, add_special_tokens=False)["input_ids"]) == 1 for label in one_token)
    multi = ["one hundred degrees", "ten plants", "paris"]
    assert len(tiny_tokenizer(" one hundred degrees", add_special_tokens=False)["input_ids"]) > 1
    prompts = ["the movie was great\nLabel:", "water boils at", "a terrible boring film with awful dialogue\nLabel:"]
    choices = [one_token, multi, one_token]
    scores = rank_choices(model, tiny_tokenizer, prompts, choices, batch_size=8)
    for prompt, options, row in zip(prompts, choices, scores):
        expected = [_hand_logprob(model, tiny_tokenizer, prompt, " " + option) for option in options]
        assert row == pytest.approx(expected, abs=1e-4)
        assert max(range(len(row)), key=row.__getitem__) == max(range(len(expected)), key=expected.__getitem__)


def test_batched_rank_scores_equal_unbatched(tiny_model, tiny_tokenizer, one_thread):
    """Left padding with position ids counted from the first real token must not change any score."""
    model = tiny_model.eval()
    prompts = ["the", "a terrible boring film with awful dialogue and the acting", "question: what is the capital of",
               "water boils at one hundred degrees celsius at sea", "photosynthesis converts"]
    choices = [["positive", "negative"], ["paris", "france answer"], ["ten plants", "one hundred degrees"],
               ["level", "plants"], ["light energy", "water"]]
    batched = rank_choices(model, tiny_tokenizer, prompts, choices, batch_size=8)
    single = [rank_choices(model, tiny_tokenizer, [p], [c], batch_size=1)[0] for p, c in zip(prompts, choices)]
    for b, s in zip(batched, single):
        assert b == pytest.approx(s, abs=1e-4)


def test_calibration_flips_a_label_biased_model(tiny_tokenizer, one_thread):
    """A model trained to say "negative" after anything ranks "negative" first for every input; dividing by its
    content-free probabilities flips inputs whose evidence leans positive relative to "N/A"."""
    assert calibrate([-1.0, -3.0], [-0.5, -4.0]) == [-0.5, 1.0]  # p/p_cf: positive wins after calibration

    import torch

    from tests.conftest import build_tiny_model

    torch.manual_seed(0)
    model = build_tiny_model(tiny_tokenizer)
    texts = ["the movie was great and wonderful", "a terrible boring film", "N/A"]
    rows = [tiny_tokenizer(f"{t}\nLabel: negative", return_tensors="pt")["input_ids"] for t in texts[:2]]
    positive = tiny_tokenizer("the movie was great and wonderful\nLabel: positive", return_tensors="pt")["input_ids"]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for step in range(40):  # mostly "negative", a little "positive" after the great movie
        ids = rows[step % 2] if step % 5 else positive
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    labels = ["negative", "positive"]
    raw = rank_choices(model, tiny_tokenizer, [f"{texts[0]}\nLabel:"], [labels])[0]
    content_free = rank_choices(model, tiny_tokenizer, ["N/A\nLabel:"], [labels])[0]
    assert raw[0] > raw[1], "the constructed model should be biased towards negative"
    calibrated = calibrate(raw, content_free)
    assert calibrated[1] > calibrated[0], (raw, content_free)


def test_evaluate_with_calibration_uses_one_content_free_prompt_per_context(tiny_model, tiny_tokenizer, one_thread):
    task = TaskSpec(name="t", type="classification", eval="e.jsonl")
    examples = _examples("classification")
    prompts = [f"Text: {e.prompt}\nLabel:" for e in examples]
    plain = evaluate(tiny_model, tiny_tokenizer, task, examples, prompts, ["negative", "positive"], max_new_tokens=2)
    calibrated = evaluate(tiny_model, tiny_tokenizer, task, examples, prompts, ["negative", "positive"], max_new_tokens=2,
                          calibration_prompts=["Text: N/A\nLabel:"] * len(prompts))
    assert calibrated.metrics["rank_by"] == "sum_logprob_calibrated" and plain.metrics["rank_by"] == "sum_logprob"
    content_free = rank_choices(tiny_model, tiny_tokenizer, ["Text: N/A\nLabel:"], [["negative", "positive"]])[0]
    for before, after in zip(plain.predictions, calibrated.predictions):
        assert after["scores"] == pytest.approx(calibrate(before["scores"], content_free), abs=1e-3)


def test_rank_scoring_of_qa_needs_choices(tiny_model, tiny_tokenizer):
    from base.errors import AdaptError

    task = TaskSpec(name="t", type="qa", eval="e.jsonl", scoring="rank")
    with pytest.raises(AdaptError, match="choices"):
        evaluate(tiny_model, tiny_tokenizer, task, _examples("qa"), ["q"] * 3, None, max_new_tokens=2)


def test_batched_generation_matches_one_by_one(tiny_model, tiny_tokenizer):
    """Left padding must not change greedy answers."""
    from runners.scoring import generate

    prompts = ["the movie was", "a terrible boring film with awful dialogue and", "question:"]
    batched, _ = generate(tiny_model, tiny_tokenizer, prompts, max_new_tokens=5, batch_size=3)
    single = [generate(tiny_model, tiny_tokenizer, [p], max_new_tokens=5, batch_size=1)[0][0] for p in prompts]
    assert batched == single


def test_rank_prefers_the_trained_continuation(tiny_tokenizer):
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
    scores = rank_choices(model.eval(), tiny_tokenizer, ["water boils at"], [["one hundred degrees", "ten plants"]])[0]
    assert scores[0] > scores[1]


def test_evaluate_averages_label_scores_over_demonstration_orders(tiny_model, tiny_tokenizer, one_thread):
    task = TaskSpec(name="t", type="classification", eval="e.jsonl")
    examples = _examples("classification")
    labels = ["negative", "positive"]
    first = [f"Text: good\nLabel: positive\n\nText: bad\nLabel: negative\n\nText: {e.prompt}\nLabel:" for e in examples]
    second = [f"Text: bad\nLabel: negative\n\nText: good\nLabel: positive\n\nText: {e.prompt}\nLabel:" for e in examples]
    averaged = evaluate(tiny_model, tiny_tokenizer, task, examples, first, labels, max_new_tokens=2, reordered=[(second, None)])
    one, two = (rank_choices(tiny_model, tiny_tokenizer, p, [labels] * len(p)) for p in (first, second))
    assert averaged.metrics["rank_by"] == "sum_logprob_mean_of_2_orders"
    for i, (row, a, b) in enumerate(zip(averaged.predictions, one, two)):
        assert row["scores"] == pytest.approx([(x + y) / 2 for x, y in zip(a, b)], abs=1e-3)
        assert row["prompt_tokens"] == sum(len(tiny_tokenizer(p[i], add_special_tokens=False)["input_ids"]) for p in (first, second))
        assert row["prompt"] == first[i]

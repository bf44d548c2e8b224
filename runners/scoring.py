"""The one scorer: every strategy's predictions go through here, so their numbers are comparable.

Classification and QA are scored on greedy generations (answers normalised to the label set / SQuAD-style);
multiple choice by log-likelihood of each choice. Every metric gets a 95% bootstrap interval.
"""
from __future__ import annotations

import re
import string
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

from base.plan import TaskSpec
from base.data import Example
from runners.stats import bootstrap_ci

LATENCY_SAMPLE = 12  # queries timed one at a time (batch 1) for honest per-query latency


@dataclass
class Evaluation:
    metrics: dict[str, Any]
    predictions: list[dict[str, Any]]
    latency_p50_s: float | None = None
    latency_p95_s: float | None = None
    prompt_tokens_per_query: float | None = None
    completion_tokens_per_query: float | None = None
    primary_metric: str = "accuracy"
    extra: dict[str, Any] = field(default_factory=dict)


# --- metrics (pure) --------------------------------------------------------------------------------------


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower case, no punctuation, no articles, single spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match(prediction: str, answers: Sequence[str]) -> float:
    return float(any(normalize_answer(prediction) == normalize_answer(a) for a in answers))


def token_f1(prediction: str, answers: Sequence[str]) -> float:
    def f1(pred: str, gold: str) -> float:
        p, g = normalize_answer(pred).split(), normalize_answer(gold).split()
        common = sum((Counter(p) & Counter(g)).values())
        if not p or not g:
            return float(p == g)
        if common == 0:
            return 0.0
        precision, recall = common / len(p), common / len(g)
        return 2 * precision * recall / (precision + recall)

    return max((f1(prediction, a) for a in answers), default=0.0)


def match_label(prediction: str, labels: Sequence[str]) -> str | None:
    """Map free text to the label set: an exact match, else the label mentioned first; None when none is."""
    text = prediction.strip().lower()
    by_lower = {label.lower(): label for label in labels}
    if text in by_lower:
        return by_lower[text]
    first: tuple[int, str] | None = None
    for lower, label in by_lower.items():
        found = re.search(rf"(?<!\w){re.escape(lower)}(?!\w)", text)
        if found and (first is None or found.start() < first[0]):
            first = (found.start(), label)
    return first[1] if first else None


def macro_f1(predicted: Sequence[str | None], gold: Sequence[str], labels: Sequence[str]) -> float:
    scores = []
    for label in labels:
        tp = sum(p == label and g == label for p, g in zip(predicted, gold))
        fp = sum(p == label and g != label for p, g in zip(predicted, gold))
        fn = sum(p != label and g == label for p, g in zip(predicted, gold))
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return sum(scores) / len(scores) if scores else 0.0


def classification_metrics(predicted: list[str | None], gold: list[str], labels: list[str], seed: int = 0) -> dict[str, Any]:
    correct = [float(p == g) for p, g in zip(predicted, gold)]
    return {
        "accuracy": sum(correct) / len(correct) if correct else 0.0,
        "accuracy_ci": list(bootstrap_ci(correct, seed=seed)),
        "macro_f1": macro_f1(predicted, gold, labels),
        "macro_f1_ci": list(bootstrap_ci(predicted, lambda idx: macro_f1([predicted[i] for i in idx], [gold[i] for i in idx], labels), seed=seed)),
        "unparsed_rate": sum(p is None for p in predicted) / len(predicted) if predicted else 0.0,
        "n": len(correct),
    }


def qa_metrics(em: list[float], f1: list[float], seed: int = 0) -> dict[str, Any]:
    return {
        "exact_match": sum(em) / len(em) if em else 0.0,
        "exact_match_ci": list(bootstrap_ci(em, seed=seed)),
        "f1": sum(f1) / len(f1) if f1 else 0.0,
        "f1_ci": list(bootstrap_ci(f1, seed=seed)),
        "n": len(em),
    }


def percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    import numpy as np

    return float(np.percentile(values, q))


# --- model calls -----------------------------------------------------------------------------------------


@contextmanager
def inference_mode(model: Any) -> Iterator[Any]:
    """Evaluate without dropout, then hand an in-training model back in the mode it came in."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def _device_of(model: Any) -> Any:
    return next(model.parameters()).device


def stop_text(text: str, tokenizer: Any) -> str:
    """Cut a generation at the end of its first answer: end-of-turn markers, then the first line."""
    for marker in {tokenizer.eos_token, "<|im_end|>", "<end_of_turn>", "</s>"} - {None}:
        text = text.split(marker)[0]
    return text.strip().split("\n")[0].strip()


def generate(model: Any, tokenizer: Any, prompts: Sequence[str], max_new_tokens: int, batch_size: int = 8,
             progress: Callable[[int], None] | None = None) -> tuple[list[str], list[int]]:
    """Greedy generation, left-padded batches; returns the answers and the tokens each generated."""
    import torch

    device = _device_of(model)
    tokenizer.padding_side = "left"
    eos_ids = [tokenizer.eos_token_id] + [tokenizer.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<end_of_turn>") if t in tokenizer.get_vocab()]
    texts, counts = [], []
    with inference_mode(model), torch.no_grad():
        for start in range(0, len(prompts), batch_size):
            batch = list(prompts[start:start + batch_size])
            encoded = tokenizer(batch, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
            output = model.generate(**encoded, max_new_tokens=max_new_tokens, do_sample=False,
                                    eos_token_id=sorted(set(eos_ids)), pad_token_id=tokenizer.pad_token_id)
            for row in output[:, encoded["input_ids"].shape[1]:]:
                ids = row.tolist()
                length = next((i + 1 for i, tok in enumerate(ids) if tok in eos_ids), len(ids))
                counts.append(length)
                texts.append(stop_text(tokenizer.decode(ids[:length], skip_special_tokens=False), tokenizer))
            if progress:
                progress(len(batch))
    return texts, counts


def choice_logprobs(model: Any, tokenizer: Any, prompt: str, choices: Sequence[str]) -> list[tuple[float, int]]:
    """(sum log-prob, characters) of each choice continuing the prompt, in one padded batch."""
    import torch

    device = _device_of(model)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    rows = [prompt_ids + tokenizer(choice, add_special_tokens=False)["input_ids"] for choice in choices]
    width = max(len(r) for r in rows)
    pad = tokenizer.pad_token_id or 0
    input_ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows], device=device)
    attention = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], device=device)
    with torch.no_grad():
        logits = model(input_ids=input_ids, attention_mask=attention).logits.float()
    logits = logits[:, -input_ids.shape[1]:]  # prompt tuning prepends virtual tokens' logits
    logprobs = torch.log_softmax(logits[:, :-1], dim=-1)
    scores = []
    for i, row in enumerate(rows):
        targets = torch.tensor(row[len(prompt_ids):], device=device)
        positions = torch.arange(len(prompt_ids) - 1, len(row) - 1, device=device)
        scores.append((float(logprobs[i, positions, targets].sum()), len(choices[i])))
    return scores


def time_each(call: Callable[[Any], Any], items: Sequence[Any]) -> list[float]:
    """Wall time of `call` on each of the first items, one at a time: what a user waits for one answer."""
    timings = []
    for item in items[:LATENCY_SAMPLE]:
        start = time.perf_counter()
        call(item)
        timings.append(time.perf_counter() - start)
    return timings


def evaluate(
    model: Any,
    tokenizer: Any,
    task: TaskSpec,
    examples: Sequence[Example],
    prompts: Sequence[str],
    labels: Sequence[str] | None,
    max_new_tokens: int,
    *,
    seed: int = 0,
    batch_size: int = 8,
    progress: Callable[[int], None] | None = None,
) -> Evaluation:
    """Score `prompts` (one per example) with the task's metric; per-example predictions are kept for the report."""
    prompt_tokens = [len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
    if task.type == "multiple_choice":
        evaluation = _evaluate_choices(model, tokenizer, examples, prompts, seed, progress)
        latencies = time_each(lambda pair: choice_logprobs(model, tokenizer, pair[1], _choice_texts(pair[0], pair[1])),
                           list(zip(examples, prompts)))
        completion_tokens = [0] * len(prompts)
    else:
        texts, completion_tokens = generate(model, tokenizer, prompts, max_new_tokens, batch_size, progress)
        latencies = time_each(lambda prompt: generate(model, tokenizer, [prompt], max_new_tokens, batch_size=1), prompts)
        evaluation = _score_generations(task, examples, prompts, texts, labels, seed)
    evaluation.latency_p50_s = percentile(latencies, 50)
    evaluation.latency_p95_s = percentile(latencies, 95)
    evaluation.prompt_tokens_per_query = sum(prompt_tokens) / len(prompt_tokens) if prompt_tokens else 0.0
    evaluation.completion_tokens_per_query = sum(completion_tokens) / len(completion_tokens) if completion_tokens else 0.0
    for row, count, tokens in zip(evaluation.predictions, prompt_tokens, completion_tokens):
        row["prompt_tokens"], row["completion_tokens"] = count, tokens
    return evaluation


def _score_generations(task: TaskSpec, examples: Sequence[Example], prompts: Sequence[str], texts: list[str],
                       labels: Sequence[str] | None, seed: int) -> Evaluation:
    rows = []
    if task.type == "classification":
        label_set = list(labels or sorted({e.target for e in examples}))
        predicted = [match_label(text, label_set) for text in texts]
        gold = [e.target for e in examples]
        metrics = classification_metrics(predicted, gold, label_set, seed)
        for example, prompt, text, label in zip(examples, prompts, texts, predicted):
            rows.append({"id": example.id, "input": example.prompt, "prompt": prompt, "raw": text,
                         "prediction": label, "target": example.target, "correct": label == example.target})
        return Evaluation(metrics=metrics, predictions=rows, primary_metric="accuracy")
    em, f1 = [], []
    for example, prompt, text in zip(examples, prompts, texts):
        answers = example.answers or [example.target]
        em.append(exact_match(text, answers))
        f1.append(token_f1(text, answers))
        rows.append({"id": example.id, "input": example.prompt, "prompt": prompt, "prediction": text,
                     "target": example.target, "correct": bool(em[-1]), "f1": f1[-1]})
    return Evaluation(metrics=qa_metrics(em, f1, seed), predictions=rows, primary_metric="f1")


def _choice_texts(example: Example, prompt: str) -> list[str]:
    """Choices as continuations of the prompt: a separating space unless the prompt already ends in whitespace."""
    separator = "" if prompt[-1:].isspace() else " "
    return [f"{separator}{choice}" for choice in example.choices or []]


def _evaluate_choices(model: Any, tokenizer: Any, examples: Sequence[Example], prompts: Sequence[str], seed: int,
                      progress: Callable[[int], None] | None) -> Evaluation:
    rows, correct, correct_norm = [], [], []
    with inference_mode(model):
        for example, prompt in zip(examples, prompts):
            choices = example.choices or []
            scores = choice_logprobs(model, tokenizer, prompt, _choice_texts(example, prompt))
            best = max(range(len(scores)), key=lambda i: scores[i][0])
            best_norm = max(range(len(scores)), key=lambda i: scores[i][0] / max(scores[i][1], 1))
            gold = choices.index(example.target)
            correct.append(float(best == gold))
            correct_norm.append(float(best_norm == gold))
            rows.append({"id": example.id, "input": example.prompt, "prompt": prompt, "prediction": choices[best],
                         "target": example.target, "correct": best == gold})
            if progress:
                progress(1)
    metrics = {
        "accuracy": sum(correct) / len(correct) if correct else 0.0,
        "accuracy_ci": list(bootstrap_ci(correct, seed=seed)),
        "accuracy_norm": sum(correct_norm) / len(correct_norm) if correct_norm else 0.0,
        "n": len(correct),
    }
    return Evaluation(metrics=metrics, predictions=rows, primary_metric="accuracy")

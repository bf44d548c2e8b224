"""The one scorer: every strategy's predictions go through here, so their numbers are comparable.

Classification and multiple choice are ranked by default (`TaskSpec.scoring: rank`): every label/choice is scored by
its log-likelihood after the prompt and the argmax wins — lm-eval's convention, so a base model is not judged on
whether it can spell a label. Format compliance (are free generations exactly a label?) is reported beside it.
QA is scored on greedy generations (EM/F1, SQuAD normalisation); `scoring: generate` keeps generate-and-parse for
classification too. Every metric gets a 95% bootstrap interval.

Under a multi-process launch the model calls are data-parallel: each process ranks, generates for and times its
contiguous share of the items and every per-item result comes back in order (runners.shards) before any metric is
computed, so predictions, intervals and costs are those of one process, up to float summation order.

The ranking is written here rather than called through lm-eval's HFLM.loglikelihood: HFLM scores one row per
(prompt, choice), while one-token label sets need one forward per prompt here and only the last positions' logits
(bench/eval_throughput.py measures both on the same items).
"""
from __future__ import annotations

import re
import string
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

from base.data import Example
from base.plan import TaskSpec
from runners.context import context_length, fit_prompts
from runners.prompting import answer_prefix
from runners.shards import map_shards, report_share
from runners.stats import bootstrap_ci

LATENCY_SAMPLE = 12  # queries timed one at a time (batch 1) for honest per-query latency
FORMAT_SAMPLE = 50  # rank-scored queries also generated freely, for format compliance


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


def rank_choices(model: Any, tokenizer: Any, prompts: Sequence[str], choices: Sequence[Sequence[str]], *,
                 batch_size: int = 8, progress: Callable[[int], None] | None = None) -> list[list[float]]:
    """Sum log-probability of each choice continuing its prompt: `choices[i][j]` after `prompts[i]`.

    Each choice is tokenized on its own after the prompt's tokens, exactly as training concatenates prompt and
    completion. Where every choice of a prompt is one token (most label sets), one forward over the prompt scores
    them all; longer choices get a row each (prompt + choice). Rows are sorted by length and left-padded, with
    position ids counted from each row's first real token, so only the last positions' logits are computed
    (`logits_to_keep`) and a batched score equals the unbatched one.
    """
    import torch

    from runners.models import is_prompt_learning

    device = _device_of(model)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    rows: list[tuple[list[int], list[tuple[int, int, list[int]]]]] = []  # (input ids, [(item, choice, targets)])
    for item, (prompt, options) in enumerate(zip(prompts, choices)):
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        targets = [tokenizer(answer_prefix(prompt) + option, add_special_tokens=False)["input_ids"] for option in options]
        if all(len(t) == 1 for t in targets):
            rows.append((prompt_ids, [(item, j, t) for j, t in enumerate(targets)]))
        else:
            rows.extend((prompt_ids + t[:-1], [(item, j, t)]) for j, t in enumerate(targets))
    scores = [[float("-inf")] * len(options) for options in choices]
    order = sorted(range(len(rows)), key=lambda r: -len(rows[r][0]))
    pass_positions = not is_prompt_learning(model)  # peft prompt learning ignores position ids (with a warning)
    reported = 0
    with inference_mode(model), torch.no_grad():
        for start in range(0, len(order), batch_size):
            batch = [rows[r] for r in order[start:start + batch_size]]
            width = max(len(ids) for ids, _ in batch)
            keep = max(len(t) for _, requests in batch for _, _, t in requests)
            input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids, _ in batch], device=device)
            mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids, _ in batch], device=device)
            extra = {"position_ids": (mask.cumsum(-1) - 1).clamp(min=0)} if pass_positions else {}
            logits = model(input_ids=input_ids, attention_mask=mask, logits_to_keep=keep, use_cache=False, **extra).logits
            logprobs = torch.log_softmax(logits[:, -keep:].float(), dim=-1)
            for row, (_, requests) in enumerate(batch):
                for item, j, targets in requests:
                    positions = torch.arange(keep - len(targets), keep, device=device)  # one-token choices: the last
                    scores[item][j] = float(logprobs[row, positions, torch.tensor(targets, device=device)].sum())
            if progress:  # in prompts, however many rows each one took
                finished = round(min(start + batch_size, len(order)) * len(prompts) / len(order))
                progress(finished - reported)
                reported = finished
    return scores


def ranked_in_shards(model: Any, tokenizer: Any, prompts: Sequence[str], choices: Sequence[Sequence[str]], *,
                     batch_size: int = 8, progress: Callable[[int], None] | None = None) -> list[list[float]]:
    """`rank_choices`, each process of a multi-process run ranking its share of the prompts (runners.shards)."""
    return map_shards(lambda mine, advance: rank_choices(model, tokenizer, [prompts[i] for i in mine],
                                                         [choices[i] for i in mine], batch_size=batch_size,
                                                         progress=advance), len(prompts), progress)


def generated_in_shards(model: Any, tokenizer: Any, prompts: Sequence[str], max_new_tokens: int, batch_size: int = 8,
                        progress: Callable[[int], None] | None = None) -> tuple[list[str], list[int]]:
    """`generate`, each process of a multi-process run generating for its share of the prompts (runners.shards)."""
    pairs = map_shards(lambda mine, advance: list(zip(*generate(model, tokenizer, [prompts[i] for i in mine],
                                                                 max_new_tokens, batch_size, advance))),
                       len(prompts), progress)
    return [text for text, _ in pairs], [count for _, count in pairs]


def timed_in_shards(call: Callable[[Any], Any], items: Sequence[Any]) -> list[float]:
    """`time_each` over the same first items, each process of a multi-process run timing its share of them."""
    sample = list(items[:LATENCY_SAMPLE])
    return map_shards(lambda mine, _: time_each(call, [sample[i] for i in mine]), len(sample))


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
    calibration_prompts: Sequence[str] | None = None,
    reordered: Sequence[tuple[Sequence[str], Sequence[str] | None]] = (),
) -> Evaluation:
    """Score `prompts` (one per example) the task's way; per-example predictions are kept for the report.

    `rank` tasks pick the label/choice with the highest log-likelihood (optionally calibrated against
    `calibration_prompts`, each prompt's content-free twin) and add format compliance from a sample of free
    generations; `generate` tasks parse greedy generations. Prompts too long for the model's context keep their
    last tokens (runners.context); `truncated_prompts` counts them.

    `reordered`: the same prompts with their demonstrations in other orders, each with its calibration twins (or
    None); rank tasks average the label scores over every order, and prompt tokens and latency count them all.
    Generations (format compliance, `generate` tasks) use `prompts` alone.
    Every process of a multi-process run calls this with the same arguments and gets the same Evaluation.
    """
    options = choice_sets(task, examples, labels) if task.scoring == "rank" else []
    context = context_length(model, tokenizer)
    answer_room = max([max_new_tokens] + [len(tokenizer(o, add_special_tokens=False)["input_ids"]) + 1
                                          for o in {o for opts in options for o in opts}])
    budget = context - answer_room if context is not None else None
    orders = [(prompts, calibration_prompts), *(reordered if task.scoring == "rank" else ())]
    fitted = []
    for order_prompts, order_calibration in orders:
        order_prompts, order_truncated = fit_prompts(tokenizer, order_prompts, budget)
        if order_calibration is not None:
            order_calibration, _ = fit_prompts(tokenizer, order_calibration, budget)
        fitted.append((order_prompts, order_calibration, order_truncated))
    prompts, truncated = fitted[0][0], fitted[0][2]
    report_share("scoring eval items:", len(prompts))
    prompt_tokens = [sum(len(tokenizer(order[0][i], add_special_tokens=False)["input_ids"]) for order in fitted)
                     for i in range(len(prompts))]
    if task.scoring == "rank":
        evaluation = _evaluate_ranked(model, tokenizer, task, examples, [order[:2] for order in fitted], options, seed,
                                      batch_size, progress)
        latencies = timed_in_shards(lambda i: [rank_choices(model, tokenizer, [order[0][i]], [options[i]], batch_size=1)
                                               for order in fitted], range(len(prompts)))
        completion_tokens = _format_compliance(model, tokenizer, evaluation, prompts, options, max_new_tokens, batch_size)
    else:
        texts, completion_tokens = generated_in_shards(model, tokenizer, prompts, max_new_tokens, batch_size, progress)
        latencies = timed_in_shards(lambda prompt: generate(model, tokenizer, [prompt], max_new_tokens, batch_size=1), prompts)
        evaluation = _score_generations(task, examples, prompts, texts, labels, seed)
    evaluation.metrics["scoring"] = task.scoring
    evaluation.metrics["truncated_prompts"] = sum(truncated)
    evaluation.latency_p50_s = percentile(latencies, 50)
    evaluation.latency_p95_s = percentile(latencies, 95)
    evaluation.prompt_tokens_per_query = sum(prompt_tokens) / len(prompt_tokens) if prompt_tokens else 0.0
    evaluation.completion_tokens_per_query = sum(completion_tokens) / len(completion_tokens) if completion_tokens else 0.0
    for row, count, cut in zip(evaluation.predictions, prompt_tokens, truncated):
        row["prompt_tokens"] = count
        if cut:
            row["prompt_truncated"] = True
    return evaluation


def choice_sets(task: TaskSpec, examples: Sequence[Example], labels: Sequence[str] | None) -> list[list[str]]:
    """What each example ranks: the label set for classification, the example's own choices otherwise."""
    from base.errors import AdaptError

    if task.type == "classification":
        label_set = list(labels or sorted({e.target for e in examples}))
        return [label_set] * len(examples)
    missing = next((e for e in examples if not e.choices or e.target not in e.choices), None)
    if missing is not None:
        raise AdaptError(f"scoring: rank needs every example to list `choices` that include its answer; "
                         f"example {missing.id!r} does not", file=missing.source or None, line=missing.line or None,
                         field=f"tasks.{task.name}.scoring", hint="use `scoring: generate` for free-form answers")
    return [list(e.choices or []) for e in examples]


def calibrate(scores: Sequence[float], content_free_scores: Sequence[float]) -> list[float]:
    """Contextual calibration: log p(label | input) - log p(label | "N/A"), i.e. p / p_cf before normalising."""
    return [s - c for s, c in zip(scores, content_free_scores)]


def _ranked_scores(model: Any, tokenizer: Any, prompts: Sequence[str], calibration_prompts: Sequence[str] | None,
                   options: list[list[str]], batch_size: int, progress: Callable[[int], None] | None) -> list[list[float]]:
    """Each example's choice log-likelihoods, calibrated against the content-free twins when given."""
    scores = ranked_in_shards(model, tokenizer, prompts, options, batch_size=batch_size, progress=progress)
    if calibration_prompts is None:
        return scores
    unique: dict[str, list[str]] = {}  # zero-shot has one content-free prompt; few-shot one per demo set
    for prompt, opts in zip(calibration_prompts, options):
        unique.setdefault(prompt, opts)
    by_prompt = dict(zip(unique, ranked_in_shards(model, tokenizer, list(unique), list(unique.values()), batch_size=batch_size)))
    return [calibrate(row, by_prompt[p]) for row, p in zip(scores, calibration_prompts)]


def _evaluate_ranked(model: Any, tokenizer: Any, task: TaskSpec, examples: Sequence[Example],
                     orders: Sequence[tuple[Sequence[str], Sequence[str] | None]], options: list[list[str]], seed: int,
                     batch_size: int, progress: Callable[[int], None] | None) -> Evaluation:
    """Rank every example's choices; with several prompt orders, by the mean of their (calibrated) scores."""
    per_order = [_ranked_scores(model, tokenizer, order_prompts, calibration, options, batch_size, progress)
                 for order_prompts, calibration in orders]
    scores = [[sum(values) / len(per_order) for values in zip(*rows)] for rows in zip(*per_order)]
    prompts, calibration_prompts = orders[0]
    best = [max(range(len(row)), key=row.__getitem__) for row in scores]
    best_norm = [max(range(len(row)), key=lambda j: row[j] / max(len(opts[j]), 1)) for row, opts in zip(scores, options)]
    predicted = [opts[b] for opts, b in zip(options, best)]
    gold = [e.target for e in examples]
    if task.type == "classification":
        metrics = classification_metrics(predicted, gold, options[0] if options else [], seed)
        del metrics["unparsed_rate"]  # ranking always yields a label
    else:
        correct = [float(p == g) for p, g in zip(predicted, gold)]
        metrics = {"accuracy": sum(correct) / len(correct) if correct else 0.0,
                   "accuracy_ci": list(bootstrap_ci(correct, seed=seed)), "n": len(correct)}
    correct_norm = [float(opts[b] == g) for opts, b, g in zip(options, best_norm, gold)]
    metrics["accuracy_norm"] = sum(correct_norm) / len(correct_norm) if correct_norm else 0.0
    metrics["rank_by"] = "sum_logprob" + ("_calibrated" if calibration_prompts is not None else "") \
        + (f"_mean_of_{len(orders)}_orders" if len(orders) > 1 else "")
    rows = [{"id": e.id, "input": e.prompt, "prompt": prompt, "prediction": p, "target": e.target, "correct": p == e.target,
             "scores": [round(s, 4) for s in row]}
            for e, prompt, p, row in zip(examples, prompts, predicted, scores)]
    return Evaluation(metrics=metrics, predictions=rows, primary_metric="accuracy")


def _format_compliance(model: Any, tokenizer: Any, evaluation: Evaluation, prompts: Sequence[str],
                       options: list[list[str]], max_new_tokens: int, batch_size: int) -> list[int]:
    """Generate freely for the first FORMAT_SAMPLE prompts: the share whose answer is exactly a label/choice is
    what a served model (which generates, not ranks) would get right in form. Returns the tokens generated."""
    sample = list(prompts[:FORMAT_SAMPLE])
    longest = max((len(tokenizer(o, add_special_tokens=False)["input_ids"]) for opts in options[:FORMAT_SAMPLE] for o in opts),
                  default=1)
    texts, counts = generated_in_shards(model, tokenizer, sample, min(max_new_tokens, longest + 2), batch_size)
    exact = [_is_exactly_one_of(text, opts) for text, opts in zip(texts, options)]
    for row, text in zip(evaluation.predictions, texts):
        row["raw"] = text
    evaluation.metrics["format_compliance"] = sum(exact) / len(exact) if exact else None
    evaluation.metrics["format_compliance_n"] = len(exact)
    return counts


def _is_exactly_one_of(text: str, options: Sequence[str]) -> bool:
    answer = text.strip().rstrip(".!").strip().lower()
    return answer in {o.strip().lower() for o in options}


def _score_generations(task: TaskSpec, examples: Sequence[Example], prompts: Sequence[str], texts: list[str],
                       labels: Sequence[str] | None, seed: int) -> Evaluation:
    rows = []
    if task.type == "classification":
        label_set = list(labels or sorted({e.target for e in examples}))
        predicted = [match_label(text, label_set) for text in texts]
        gold = [e.target for e in examples]
        metrics = classification_metrics(predicted, gold, label_set, seed)
        metrics["format_compliance"] = sum(_is_exactly_one_of(t, label_set) for t in texts) / len(texts) if texts else None
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

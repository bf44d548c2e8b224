"""Functions every runner shares: load the task's data, measure peak memory, turn an Evaluation into a RunResult."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from base.errors import AdaptError
from base.plan import RunSpec, TaskSpec
from base.data import Document, Example, load_corpus, load_examples
from base.io import write_jsonl_atomic
from base.results import RunResult, RunStatus, environment, now_iso
from runners.scoring import Evaluation


@dataclass
class TaskData:
    train: list[Example]
    eval: list[Example]
    labels: list[str] | None  # classification label set
    corpus: list[Document] | None


def load_task_data(spec: RunSpec, need_corpus: bool = False) -> TaskData:
    """The task's splits with the plan's limits applied; the label set from the plan or from the data."""
    task = spec.task
    train = load_examples(task.train, limit=task.train_limit) if task.train else []
    evaluation = load_examples(task.eval, limit=task.eval_limit)
    labels = task_labels(task, train, evaluation)
    corpus = load_corpus(task.corpus) if (need_corpus and task.corpus) else None
    return TaskData(train=train, eval=evaluation, labels=labels, corpus=corpus)


def task_labels(task: TaskSpec, train: Sequence[Example], evaluation: Sequence[Example]) -> list[str] | None:
    """A classification task's label set: the plan's `labels:`, else the train labels (the eval labels when there
    is no train file). A train or eval label outside that set is an error: it could never be predicted right."""
    if task.type != "classification":
        return None
    labels = task.labels or sorted({e.target for e in (train or evaluation)})
    where = "the plan's `labels:`" if task.labels else "the train file's labels"
    for example in [*train, *evaluation]:
        if example.target not in labels:
            raise AdaptError(f"label {example.target!r} is not one of {where} {labels}", file=example.source,
                             line=example.line, field="label",
                             hint="fix the label, or list every label the task accepts under the task's `labels:`")
    return labels


class PeakMemory:
    """Peak memory inside a `with` block: CUDA max_memory_allocated, else the process RSS sampled every 20 ms."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "PeakMemory":
        if self.device == "cuda":
            import torch

            torch.cuda.reset_peak_memory_stats()
        else:
            import psutil

            process = psutil.Process()
            self.peak_mb = process.memory_info().rss / 2**20

            def sample() -> None:
                while not self._stop.wait(0.02):
                    self.peak_mb = max(self.peak_mb, process.memory_info().rss / 2**20)

            self._thread = threading.Thread(target=sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.device == "cuda":
            import torch

            self.peak_mb = torch.cuda.max_memory_allocated() / 2**20
        else:
            self._stop.set()
            if self._thread:
                self._thread.join()
            import psutil

            self.peak_mb = max(self.peak_mb, psutil.Process().memory_info().rss / 2**20)


def folder_size_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file()) / 2**20


def count_params(model: Any) -> tuple[int, int]:
    """(trainable, total) parameters; 4-bit weights count by their logical size, as peft reports them."""
    if hasattr(model, "get_nb_trainable_parameters"):
        trainable, total = model.get_nb_trainable_parameters()
        return int(trainable), int(total)
    return sum(p.numel() for p in model.parameters() if p.requires_grad), sum(p.numel() for p in model.parameters())


def serving_cost(spec: RunSpec, evaluation: Evaluation) -> dict[str, float]:
    """$ per 1M queries at the plan's token prices: in-context strategies pay for their longer prompts."""
    prompt = evaluation.prompt_tokens_per_query or 0.0
    completion = evaluation.completion_tokens_per_query or 0.0
    return {"usd_per_1m_queries": prompt * spec.cost.usd_per_1m_input_tokens + completion * spec.cost.usd_per_1m_output_tokens}


def build_result(
    spec: RunSpec,
    evaluation: Evaluation,
    cost: dict[str, Any],
    started: float,
    *,
    curves: dict[str, Any] | None = None,
    artifact_dir: Path | None = None,
    extra_metrics: dict[str, Any] | None = None,
    model_hash: str | None = None,
) -> RunResult:
    """Assemble a finished run: predictions written next to its artifacts, costs priced, environment recorded."""
    results_root = spec.run_dir.parent.parent
    predictions = spec.run_dir / "predictions.jsonl"
    write_jsonl_atomic(predictions, evaluation.predictions)
    cost = {
        **cost,
        "latency_p50_s": evaluation.latency_p50_s,
        "latency_p95_s": evaluation.latency_p95_s,
        "prompt_tokens_per_query": evaluation.prompt_tokens_per_query,
        "completion_tokens_per_query": evaluation.completion_tokens_per_query,
        **serving_cost(spec, evaluation),
    }
    hour_price = spec.cost.gpu_hour_usd if spec.device == "cuda" else spec.cost.cpu_hour_usd
    cost["usd_train"] = (cost.get("train_time_s") or 0.0) / 3600 * hour_price
    finished = time.time()
    return RunResult(
        run_id=spec.run_id, task=spec.task.name, strategy=spec.strategy.strategy, label=spec.strategy.name,
        status=RunStatus.ok, config=spec.model_dump(mode="json"), config_hash=spec.config_hash,
        primary_metric=evaluation.primary_metric, metrics={**evaluation.metrics, **(extra_metrics or {})},
        cost=cost, curves=curves or {}, predictions_file=str(predictions.relative_to(results_root)),
        artifact_dir=str(artifact_dir.relative_to(results_root)) if artifact_dir else None,
        seed=spec.seed, model=spec.model, hashes={"model": model_hash, **spec.data_hashes}, env=environment(),
        started_at=time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(started)), finished_at=now_iso(),
        duration_s=round(finished - started, 3),
    )


def prompts_for(tokenizer: Any, spec: RunSpec, data: TaskData, examples: Sequence[Example],
                demos: Sequence[Sequence[Example]] | None = None,
                passages: Sequence[Sequence[str]] | None = None) -> list[str]:
    """Render each example's prompt in the task's format, with its own demonstrations / passages when the strategy
    supplies them. With `calibrate` on, score() also gets each prompt's content-free twin from here."""
    from runners.prompting import build_prompt

    return [build_prompt(tokenizer, spec.task, example, data.labels,
                         demos=demos[i] if demos else (), passages=passages[i] if passages else ())
            for i, example in enumerate(examples)]


def calibration_prompts(tokenizer: Any, spec: RunSpec, data: TaskData, examples: Sequence[Example],
                        demos: Sequence[Sequence[Example]] | None = None,
                        passages: Sequence[Sequence[str]] | None = None) -> list[str] | None:
    """The content-free twin of each prompt (same demonstrations and passages, input "N/A") when the strategy asks
    for contextual calibration; None otherwise."""
    from base.errors import AdaptError
    from runners.prompting import content_free

    if not getattr(spec.strategy, "calibrate", False):
        return None
    if spec.task.scoring != "rank":
        raise AdaptError("calibrate: true needs a rank-scored task (it rescales label probabilities)",
                         field=f"strategies.{spec.strategy.name}.calibrate", hint=f"set tasks.{spec.task.name}.scoring: rank")
    return prompts_for(tokenizer, spec, data, [content_free(e) for e in examples], demos, passages)


def seed_everything(seed: int) -> None:
    """Python, numpy and torch (CPU and every GPU) seeded at once."""
    from transformers import set_seed

    set_seed(seed)


def score(spec: RunSpec, model: Any, tokenizer: Any, data: TaskData, prompts: Sequence[str],
          calibration: Sequence[str] | None = None,
          reordered: Sequence[tuple[Sequence[str], Sequence[str] | None]] = ()) -> tuple[Evaluation, float]:
    """Evaluate prompts on the eval split with a progress bar; returns the Evaluation and peak memory (MB)."""
    from base.progress import bar
    from runners.scoring import evaluate

    total = len(prompts) * (1 + (len(reordered) if spec.task.scoring == "rank" else 0))
    with PeakMemory(spec.device) as peak, bar(f"{spec.task.name} · {spec.strategy.name}: scoring", total) as advance:
        evaluation = evaluate(model, tokenizer, spec.task, data.eval, prompts, data.labels,
                              spec.strategy.max_new_tokens, seed=spec.seed, progress=advance,
                              calibration_prompts=calibration, reordered=reordered)
    return evaluation, peak.peak_mb


def rotations(demos: Sequence[Sequence[Example]], count: int) -> list[list[list[Example]]]:
    """The demonstrations of every example in `count` orders: rotations, so each demonstration comes last in one
    of them (all of them when count >= k); the first is the order given."""
    k = min((len(d) for d in demos), default=0)
    return [[list(d[shift:]) + list(d[:shift]) for d in demos] for shift in range(max(1, min(count, k)))]


def run_prompted(spec: RunSpec, model: Any, tokenizer: Any, data: TaskData, started: float, *,
                 demos: Sequence[Sequence[Example]] | None = None, passages: Sequence[Sequence[str]] | None = None,
                 extra_cost: dict[str, Any] | None = None, extra_metrics: dict[str, Any] | None = None) -> RunResult | None:
    """The shared tail of the in-context strategies (zero-shot, few-shot, RAG): base model, no training. Under a
    multi-process launch each process scores its share; the main one returns the result, the others None."""
    from runners.models import model_digest, resolve_model_path
    from runners.shards import is_main_process

    orders = rotations(demos, getattr(spec.strategy, "orderings", 1)) if demos and spec.task.scoring == "rank" else [demos]
    prompted = [(prompts_for(tokenizer, spec, data, data.eval, order, passages),
                 calibration_prompts(tokenizer, spec, data, data.eval, order, passages)) for order in orders]
    evaluation, peak_mb = score(spec, model, tokenizer, data, *prompted[0], reordered=prompted[1:])
    if not is_main_process():
        return None
    evaluation.metrics["orderings"] = len(orders)
    _, total = count_params(model)
    cost = {"train_time_s": 0.0, "peak_memory_mb": peak_mb, "trainable_params": 0, "total_params": total,
            "adapter_size_mb": 0.0, **(extra_cost or {})}
    return build_result(spec, evaluation, cost, started, extra_metrics=extra_metrics,
                        model_hash=model_digest(resolve_model_path(spec.model)))

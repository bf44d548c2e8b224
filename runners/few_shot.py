"""few_shot: k solved examples from the train split in the prompt (in-context learning), chosen at random or by similarity.

For classification the k demonstrations are spread evenly over the labels by default (`balanced`): a draw that
happens to be mostly one label pulls a small model's answers towards it (the majority-label bias of Zhao et al.
2021). `calibrate: true` corrects what bias remains.
"""
from __future__ import annotations

import math
import random
import time
from typing import Sequence

from base.data import Example
from base.plan import FewShotSettings, RunSpec
from runners.common import TaskData, load_task_data, run_prompted, seed_everything
from runners.models import load_model
from base.results import RunResult

SIMILAR_DEPTH = 200  # nearest train examples considered per query when balancing similar demonstrations


def balanced_pick(candidates: Sequence[int], pool: Sequence[Example], k: int, n_labels: int) -> list[int]:
    """The first k candidates with at most ceil(k / n_labels) per label, topped up in order if a label runs out."""
    cap = math.ceil(k / max(n_labels, 1))
    counts: dict[str, int] = {}
    picked = []
    for index in candidates:
        label = pool[index].target
        if counts.get(label, 0) < cap:
            counts[label] = counts.get(label, 0) + 1
            picked.append(index)
            if len(picked) == k:
                return picked
    return picked + [i for i in candidates if i not in picked][:k - len(picked)]


def choose_demos(settings: FewShotSettings, data: TaskData, seed: int, device: str) -> list[list[Example]]:
    """k demonstrations per eval example: a seeded random draw, or the k most similar train prompts (closest last)."""
    pool = data.train
    k = min(settings.k, len(pool))
    balance = settings.balanced and bool(data.labels)
    depth = min(len(pool), max(SIMILAR_DEPTH, 20 * k)) if balance else k
    if settings.selection == "similar":
        from retrieval.embedders import get_embedder
        from retrieval.index import nearest

        embedder = get_embedder(settings.embedder, device)
        candidates = nearest(embedder, [e.prompt for e in pool], [e.prompt for e in data.eval], depth)
    else:
        rng = random.Random(seed)
        candidates = [rng.sample(range(len(pool)), len(pool) if balance else k) for _ in data.eval]
    picks = [balanced_pick(row, pool, k, len(data.labels or [])) if balance else list(row)[:k] for row in candidates]
    if settings.selection == "similar":
        picks = [list(reversed(row)) for row in picks]
    return [[pool[i] for i in row] for row in picks]


def run(spec: RunSpec) -> RunResult | None:
    started = time.time()
    seed_everything(spec.seed)
    settings: FewShotSettings = spec.strategy  # type: ignore[assignment]
    data = load_task_data(spec)
    demos = choose_demos(settings, data, spec.seed, spec.device)
    model, tokenizer = load_model(spec.model, spec.device, spec.dtype)
    return run_prompted(spec, model, tokenizer, data, started, demos=demos,
                        extra_metrics={"k": len(demos[0]) if demos else 0, "selection": settings.selection,
                                       "balanced": settings.balanced and bool(data.labels)})

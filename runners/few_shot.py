"""few_shot: k solved examples from the train split in the prompt (in-context learning), chosen at random or by similarity."""
from __future__ import annotations

import random
import time

from base.plan import FewShotSettings, RunSpec
from runners.common import TaskData, load_task_data, prompts_for, run_prompted, seed_everything
from base.data import Example
from runners.models import load_model
from base.results import RunResult


def choose_demos(settings: FewShotSettings, data: TaskData, seed: int, device: str) -> list[list[Example]]:
    """k demonstrations per eval example: a seeded random draw, or the k most similar train prompts (closest last)."""
    pool = data.train
    k = min(settings.k, len(pool))
    if settings.selection == "similar":
        from retrieval.embedders import get_embedder
        from retrieval.index import nearest

        embedder = get_embedder(settings.embedder, device)
        picks = [list(reversed(row)) for row in nearest(embedder, [e.prompt for e in pool], [e.prompt for e in data.eval], k)]
    else:
        rng = random.Random(seed)
        picks = [rng.sample(range(len(pool)), k) for _ in data.eval]
    return [[pool[i] for i in row] for row in picks]


def run(spec: RunSpec) -> RunResult:
    started = time.time()
    seed_everything(spec.seed)
    settings: FewShotSettings = spec.strategy  # type: ignore[assignment]
    data = load_task_data(spec)
    demos = choose_demos(settings, data, spec.seed, spec.device)
    model, tokenizer = load_model(spec.model, spec.device, spec.dtype)
    return run_prompted(spec, model, tokenizer, data, prompts_for(tokenizer, spec, data, data.eval, demos=demos), started,
                        extra_metrics={"k": len(demos[0]) if demos else 0, "selection": settings.selection})

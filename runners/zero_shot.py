"""zero_shot: the base model with the task instruction alone — the baseline every other strategy must beat."""
from __future__ import annotations

import time

from base.plan import RunSpec
from runners.common import load_task_data, run_prompted, seed_everything
from runners.models import load_model
from base.results import RunResult


def run(spec: RunSpec) -> RunResult | None:
    started = time.time()
    seed_everything(spec.seed)
    data = load_task_data(spec)
    model, tokenizer = load_model(spec.model, spec.device, spec.dtype)
    return run_prompted(spec, model, tokenizer, data, started)

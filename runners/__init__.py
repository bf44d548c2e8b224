"""Strategy runners. Each is one module with `run(spec: RunSpec) -> RunResult`, looked up lazily by name."""
from __future__ import annotations

import importlib
from typing import Callable

RUNNERS: dict[str, str] = {
    "zero_shot": "runners.zero_shot:run",
    "few_shot": "runners.few_shot:run",
    "rag": "runners.rag:run",
    "lora": "runners.lora:run",
    "qlora": "runners.qlora:run",
    "ia3": "runners.ia3:run",
    "prompt_tuning": "runners.prompt_tuning:run",
    "full_ft": "runners.full_ft:run",
    "cpt": "runners.cpt:run",
}


def get_runner(strategy: str) -> Callable:
    """Import a runner only when it is needed (a plan without LoRA never imports peft)."""
    try:
        target = RUNNERS[strategy]
    except KeyError:
        raise KeyError(f"no runner for strategy {strategy!r}; known: {sorted(RUNNERS)}") from None
    module_name, function = target.split(":")
    return getattr(importlib.import_module(module_name), function)

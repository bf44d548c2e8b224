"""Strategy runners. Each is one module with `run(spec: RunSpec) -> RunResult`, named by its registry entry
(base.strategies) and imported only when a plan runs it."""
from __future__ import annotations

from typing import Callable

from base import registry


def get_runner(strategy: str) -> Callable:
    """The runner of a registered strategy (a plan without LoRA never imports peft)."""
    return registry.runner(strategy)

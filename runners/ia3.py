"""ia3: learned per-channel scaling vectors on keys, values and the feed-forward output — the fewest weights."""
from __future__ import annotations

from typing import Any

from base.plan import IA3Settings, RunSpec
from base.results import RunResult
from runners.adapters import peft_model
from runners.training import run_training


def ia3_model(model: Any, settings: IA3Settings) -> Any:
    return peft_model(model, settings)


def run(spec: RunSpec) -> RunResult:
    return run_training(spec, build_model=ia3_model)

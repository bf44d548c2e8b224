"""ia3: learned per-channel scaling vectors on keys, values and the feed-forward output — the fewest weights."""
from __future__ import annotations

from typing import Any

from base.plan import IA3Settings, RunSpec
from base.results import RunResult
from runners.training import run_training


def ia3_model(model: Any, settings: IA3Settings) -> Any:
    from peft import IA3Config, get_peft_model

    config = IA3Config(target_modules=list(settings.target_modules),
                       feedforward_modules=list(settings.feedforward_modules), task_type="CAUSAL_LM")
    return get_peft_model(model, config)


def run(spec: RunSpec) -> RunResult:
    return run_training(spec, build_model=ia3_model)

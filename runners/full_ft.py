"""full_ft: every weight is trained; the whole model is saved (tokenizer included) under the run's model folder."""
from __future__ import annotations

from typing import Any

from base.plan import FullFTSettings, RunSpec
from base.results import RunResult
from runners.training import run_training


def all_trainable(model: Any, settings: FullFTSettings | None = None) -> Any:
    for param in model.parameters():
        param.requires_grad_(True)
    return model


def run(spec: RunSpec) -> RunResult:
    return run_training(spec, build_model=all_trainable)

"""lora: low-rank adapters on the attention (or chosen) projections; the base weights stay frozen."""
from __future__ import annotations

from typing import Any

from base.plan import LoraSettings, RunSpec
from base.results import RunResult
from runners.adapters import peft_model
from runners.training import run_training


def lora_model(model: Any, settings: LoraSettings) -> Any:
    """Wrap in a peft LoRA model: r x (in + out) trainable weights per targeted linear layer."""
    return peft_model(model, settings)


def run(spec: RunSpec) -> RunResult:
    return run_training(spec, build_model=lora_model)

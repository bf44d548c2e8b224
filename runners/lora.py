"""lora: low-rank adapters on the attention (or chosen) projections; the base weights stay frozen.

The variants are settings: DoRA (`use_dora`), rank-stabilised scaling (`use_rslora`) and peft's initialisations
(`init`). PiSSA and OLoRA move the weights' principal part into the adapter, changing the base model; the adapter as it
was before training is kept in a temporary folder so that saving converts it into a plain LoRA on the unchanged base.
"""
from __future__ import annotations

import atexit
import shutil
import tempfile
from typing import Any

from base.plan import MUTATING_LORA_INITS, LoraSettings, RunSpec
from base.results import RunResult
from runners.adapters import peft_model
from runners.training import INITIAL_ADAPTER, run_training


def lora_model(model: Any, settings: LoraSettings) -> Any:
    """Wrap in a peft LoRA model: r x (in + out) trainable weights per targeted linear layer."""
    wrapped = peft_model(model, settings)
    if settings.init in MUTATING_LORA_INITS:
        folder = tempfile.mkdtemp(prefix="adaptlab-initial-adapter-")
        atexit.register(shutil.rmtree, folder, True)
        wrapped.save_pretrained(folder)
        setattr(wrapped, INITIAL_ADAPTER, folder)
    return wrapped


def run(spec: RunSpec) -> RunResult:
    return run_training(spec, build_model=lora_model)

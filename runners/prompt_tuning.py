"""prompt_tuning: a few trained virtual-token embeddings prefix every input; the model itself is untouched.

Rows cannot be packed (the virtual tokens prefix a row, not each example), so training uses length-grouped
padded batches; virtual tokens start from sampled vocabulary embeddings (random init is much slower to train).
"""
from __future__ import annotations

from typing import Any

from base.plan import PromptTuningSettings, RunSpec
from base.results import RunResult
from runners.adapters import peft_model
from runners.training import run_training


def prompt_tuning_model(model: Any, settings: PromptTuningSettings) -> Any:
    from peft import PromptTuningInit

    return peft_model(model, settings, prompt_tuning_init=PromptTuningInit.SAMPLE_VOCAB)


def run(spec: RunSpec) -> RunResult:
    return run_training(spec, build_model=prompt_tuning_model)

"""llama_adapter: LLaMA-Adapter through peft's adaption prompt — learned prompts that the top layers' attention reads
through a gate initialised at zero, so training starts exactly from the base model.

peft implements it for the architectures in its TRANSFORMERS_MODEL_CONFIG (llama and mistral, and gpt2); any other is a
clear error before training starts.
"""
from __future__ import annotations

from typing import Any

from base.errors import AdaptError
from base.plan import LlamaAdapterSettings, RunSpec
from base.results import RunResult
from runners.adapters import peft_model
from runners.training import run_training


def llama_adapter_model(model: Any, settings: LlamaAdapterSettings) -> Any:
    from peft.tuners.adaption_prompt.config import TRANSFORMERS_MODEL_CONFIG

    architecture = model.config.model_type
    if architecture not in TRANSFORMERS_MODEL_CONFIG:
        raise AdaptError(f"llama_adapter runs on {', '.join(sorted(TRANSFORMERS_MODEL_CONFIG))} models (peft's adaption "
                         f"prompt); this one is {architecture!r}", field="model",
                         hint="use lora or prefix_tuning for this model")
    layers = min(settings.adapter_layers, model.config.num_hidden_layers)
    return peft_model(model, settings.model_copy(update={"adapter_layers": layers}))


def run(spec: RunSpec) -> RunResult:
    return run_training(spec, build_model=llama_adapter_model)

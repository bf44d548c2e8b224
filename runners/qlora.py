"""qlora: LoRA on a base model quantised to 4 bits by bitsandbytes (nf4/fp4), on CUDA or CPU.

On CPU the compute dtype is float32 (measured: exact gradients, ~1.2x the step time of fp32 LoRA). The CPU trap
(an eval-mode no-grad forward repacks Linear4bit and kills gradients) is handled in training.eval_mode.
"""
from __future__ import annotations

from typing import Any

from base.plan import QLoraSettings, RunSpec
from runners.lora import lora_model
from base.results import RunResult
from runners.training import run_training


def quantization_config(settings: QLoraSettings, device: str) -> Any:
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=settings.quant_type,
                              bnb_4bit_use_double_quant=settings.double_quant,
                              bnb_4bit_compute_dtype=torch.bfloat16 if device == "cuda" else torch.float32)


def qlora_model(model: Any, settings: QLoraSettings) -> Any:
    """peft's k-bit preparation (norms in fp32, input grads) then the same LoRA wrap as `lora`."""
    from peft import prepare_model_for_kbit_training

    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=settings.grad_checkpointing)
    return lora_model(model, settings)


def run(spec: RunSpec) -> RunResult:
    return run_training(spec, build_model=qlora_model, quantization_config=quantization_config(spec.strategy, spec.device))

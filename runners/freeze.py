"""freeze: train only the last N transformer blocks plus the final norm and the LM head; everything below stays as it
was. It answers "tune the last layers or all of them?" beside full_ft on the same data.

When the head shares its matrix with the input embeddings (tied, as in SmolLM2 and Llama 3.2), training the head trains
that shared matrix; the trainable count in the result says so in numbers.
"""
from __future__ import annotations

from typing import Any

from base.errors import AdaptError
from base.plan import FreezeSettings, RunSpec
from base.results import RunResult
from runners.training import run_training


def decoder_blocks(model: Any) -> Any:
    """The model's stack of transformer blocks: the ModuleList as long as its configured depth."""
    import torch

    depth = model.config.num_hidden_layers
    for module in model.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == depth:
            return module
    raise AdaptError(f"cannot find the {depth} transformer blocks of {type(model).__name__}", field="model",
                     hint="freeze needs a decoder whose blocks are one ModuleList, as in transformers' causal LMs")


def last_blocks_trainable(model: Any, settings: FreezeSettings) -> Any:
    blocks = decoder_blocks(model)
    if settings.layers > len(blocks):
        raise AdaptError(f"freeze trains the last {settings.layers} blocks but the model has {len(blocks)}",
                         field="strategies.freeze.layers", hint=f"choose 1 to {len(blocks)}, or use full_ft")
    model.requires_grad_(False)
    tail = [*blocks[len(blocks) - settings.layers:], model.get_output_embeddings(),
            getattr(model.get_decoder(), "norm", None)]
    for module in tail:
        if module is not None:
            module.requires_grad_(True)
    return model


def run(spec: RunSpec) -> RunResult:
    return run_training(spec, build_model=last_blocks_trainable)

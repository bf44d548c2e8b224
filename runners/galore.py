"""galore: full-parameter training with GaLore (Zhao et al. 2024, the `galore-torch` package by its authors): the
gradient of each transformer-block matrix is projected onto a rank-r subspace, refreshed every `update_proj_gap`
steps, where AdamW keeps its moments. Embeddings, the head and norms train with plain AdamW, as in the paper.

Same loop and model as full_ft; only the optimizer differs, so its peak memory is directly comparable.
"""
from __future__ import annotations

from typing import Any

from base.plan import GaloreSettings, RunSpec
from base.results import RunResult
from runners.freeze import decoder_blocks
from runners.full_ft import all_trainable
from runners.training import run_training


def galore_optimizer(model: Any, settings: GaloreSettings) -> Any:
    from galore_torch import GaLoreAdamW

    model = getattr(model, "module", model)
    projected = {id(p) for p in decoder_blocks(model).parameters() if p.ndim == 2}
    trainable = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in trainable if id(p) not in projected]},
              {"params": [p for p in trainable if id(p) in projected], "rank": settings.rank,
               "update_proj_gap": settings.update_proj_gap, "scale": settings.scale, "proj_type": settings.proj_type}]
    return GaLoreAdamW(groups, lr=settings.learning_rate, weight_decay=settings.weight_decay)


def run(spec: RunSpec) -> RunResult:
    return run_training(spec, build_model=all_trainable, make_optimizer=galore_optimizer)

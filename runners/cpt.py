"""cpt: continued pre-training — next-token loss on every token of the task's corpus, then scored zero-shot.

It tests whether reading the domain's text helps more than showing the model labelled examples.
"""
from __future__ import annotations

from base.plan import RunSpec
from runners.full_ft import all_trainable
from base.results import RunResult
from runners.training import run_training


def run(spec: RunSpec) -> RunResult:
    return run_training(spec, build_model=all_trainable, continued_pretraining=True)

"""prefix_tuning and p_tuning: peft methods whose model is their peft config and nothing more.

Prefix tuning (P-tuning v2) trains a key/value prefix for every layer; P-tuning trains a prompt encoder whose output
prefixes the input embeddings. Both are peft prompt learning, so rows are not packed (runners.training).
"""
from __future__ import annotations

from base.plan import RunSpec
from base.results import RunResult
from runners.adapters import peft_model
from runners.training import run_training


def run(spec: RunSpec) -> RunResult:
    return run_training(spec, build_model=peft_model)

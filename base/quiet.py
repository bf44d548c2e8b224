"""Silence third-party messages a user of `adapt` cannot act on — narrowly, by message and module.

Each entry names the exact message and the module that emits it, so a new or different warning from the same
library still shows. Python's `warnings` filters cover warnings; a `logging.Filter` on the emitting logger covers
messages libraries log instead (bitsandbytes logs its CPU-kernel fallback).
"""
from __future__ import annotations

import logging
import warnings

# (category, message regex, module regex): what `warnings.filterwarnings` matches.
IGNORED_WARNINGS = [
    # peft and our training loop read the old property; transformers says to move, but the caller is not ours to change.
    (FutureWarning, r"`is_gradient_checkpointing` is deprecated", r"transformers\.modeling_utils"),
]

# logger name -> message prefix: log records dropped at the logger that emits them.
IGNORED_LOG_MESSAGES = {
    # An optional faster kernel for 4-bit matmuls on CPUs with AVX512-BF16; the fallback is correct, only slower.
    "bitsandbytes.backends.cpu.ops": "Failed to load CPU gemm_4bit_forward",
}


class _DropMessage(logging.Filter):
    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)


def quiet_third_party() -> None:
    """Install the filters (idempotent: installing twice adds nothing)."""
    for category, message, module in IGNORED_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category, module=module)
    for name, prefix in IGNORED_LOG_MESSAGES.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropMessage) and f.prefix == prefix for f in logger.filters):
            logger.addFilter(_DropMessage(prefix))

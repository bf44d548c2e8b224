"""Hardware the estimates run against: a table of common GPUs and the local CPU, measured once and cached.

Figures are dense bf16 tensor-core TFLOPs (fp16 for the T4, which has no bf16) and typical on-demand cloud
prices; `mfu` is the fraction of peak a fine-tuning loop reaches in practice. No torch here: the CPU figure comes
from a numpy matmul, which uses the same BLAS class of kernels torch uses on CPU.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass

from base import paths
from base.io import write_json_atomic

GIB = 1024**3


@dataclass(frozen=True)
class Device:
    name: str
    memory_gib: float
    tflops: float  # peak dense bf16 (GPUs) or measured fp32 matmul (CPU)
    usd_per_hour: float
    mfu: float  # share of `tflops` a training step reaches
    is_gpu: bool = True

    @property
    def train_flops_per_s(self) -> float:
        return self.tflops * 1e12 * self.mfu


GPUS: dict[str, Device] = {d.name: d for d in (
    Device("T4", 15.0, 65, 0.35, 0.25),
    Device("L4", 22.5, 121, 0.80, 0.30),
    Device("A10G", 22.5, 70, 1.00, 0.35),
    Device("RTX-4090", 24.0, 165, 0.40, 0.35),
    Device("A100-40GB", 40.0, 312, 1.50, 0.40),
    Device("A100-80GB", 80.0, 312, 1.90, 0.40),
    Device("H100", 80.0, 989, 3.00, 0.35),
    Device("H200", 141.0, 989, 3.80, 0.35),
)}

CPU_MFU = 0.42  # share of the matmul benchmark a CPU training step reaches; fitted to the demo's LoRA and full-FT runs
CACHE_FILE = "hardware.json"


def measure_cpu_gflops(size: int = 512, repeats: int = 12) -> float:
    """fp32 matmul throughput of this machine, best of short repeats (~0.1 s idle) so a busy moment is skipped."""
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    a @ b  # warm-up: thread pool start, page faults
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def cpu_gflops() -> float:
    """The cached CPU figure, measured on first use and kept under the cache root."""
    cache = paths.home() / CACHE_FILE
    if cache.exists():
        try:
            return float(json.loads(cache.read_text())["cpu_gflops"])
        except (ValueError, KeyError, TypeError):
            pass  # a corrupt cache is simply measured again
    gflops = measure_cpu_gflops()
    write_json_atomic(cache, {"cpu_gflops": gflops, "cpu_count": os.cpu_count()})
    return gflops


def local_cpu(usd_per_hour: float = 0.10, gflops: float | None = None) -> Device:
    """This machine's CPU and RAM as a Device (RAM from psutil, throughput from the cached benchmark)."""
    import psutil

    memory = psutil.virtual_memory().total / GIB
    return Device("CPU", round(memory, 1), (gflops or cpu_gflops()) / 1000, usd_per_hour, CPU_MFU, is_gpu=False)


def find_gpu(name: str) -> Device | None:
    """Case- and punctuation-insensitive lookup: 'a100 80gb', 'A100-80GB' and 'a100_80gb' are one GPU."""
    key = "".join(ch for ch in name.lower() if ch.isalnum())
    for gpu in GPUS.values():
        if "".join(ch for ch in gpu.name.lower() if ch.isalnum()) == key:
            return gpu
    return None

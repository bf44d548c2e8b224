"""Hardware the estimates run against: a table of common GPUs and the local CPU, measured once and cached.

Figures are dense bf16 tensor-core TFLOPs (fp16 for the T4, which has no bf16) and memory bandwidth from NVIDIA's
datasheets, and typical on-demand cloud prices; `mfu` is the fraction of peak a fine-tuning loop reaches on large
micro-batches, one figure per GPU class (architecture), fitted to published tokens/s
(bench/data/published_training_peaks.csv). No torch here: the CPU figure comes from a numpy matmul, which uses the
same BLAS class of kernels torch uses on CPU.
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
    bandwidth_gbs: float = 0.0  # memory bandwidth (GB/s): the optimizer step is bound by it
    arch: str = ""  # GPU class the MFU was fitted per

    @property
    def train_flops_per_s(self) -> float:
        return self.tflops * 1e12 * self.mfu


# `mfu` (large micro-batch) is fitted per GPU class to one published tokens/s row each, the other rows on that GPU
# held out (bench/estimate_vs_published.py --fit): RTX 4090 (torchtune Llama-3.1-8B LoRA), A100 (torchtune
# Llama-3.2-3B full + compile; the 40 GB card has the same chip), L40S (PEFT Llama-3.2-3B LoRA r32). T4, L4, A10G,
# H100 and H200 have no published row in the table: their figures are priors, and `advise` says so.
GPUS: dict[str, Device] = {d.name: d for d in (
    Device("T4", 15.0, 65, 0.35, 0.25, bandwidth_gbs=320, arch="turing"),
    Device("L4", 22.5, 121, 0.80, 0.30, bandwidth_gbs=300, arch="ada"),
    Device("A10G", 22.5, 70, 1.00, 0.35, bandwidth_gbs=600, arch="ampere"),
    Device("RTX-4090", 24.0, 165, 0.40, 0.926, bandwidth_gbs=1008, arch="ada"),
    Device("A100-40GB", 40.0, 312, 1.50, 0.691, bandwidth_gbs=1555, arch="ampere"),
    Device("A100-80GB", 80.0, 312, 1.90, 0.691, bandwidth_gbs=2039, arch="ampere"),
    Device("H100", 80.0, 989, 3.00, 0.35, bandwidth_gbs=3350, arch="hopper"),
    Device("H200", 141.0, 989, 3.80, 0.35, bandwidth_gbs=4800, arch="hopper"),
)}
# GPUs that published reference runs used but that have no price here (not offered by `advise`).
REFERENCE_GPUS: dict[str, Device] = {d.name: d for d in (
    Device("L40S", 48.0, 362, 0.0, 0.338, bandwidth_gbs=864, arch="ada"),
)}
CHECKED_MEMORY = ("RTX-4090", "A100-40GB", "A100-80GB", "L40S")  # GPUs with published peaks in the table
CHECKED_TIME = ("RTX-4090", "A100-80GB", "L40S")  # GPUs with published tokens/s in the table


def checked_gpus() -> dict[str, list[str]]:
    """The GPUs the memory and the time estimates were held against published runs on (for `advise` to say so)."""
    return {"memory": list(CHECKED_MEMORY), "time": list(CHECKED_TIME)}


# Share of the matmul benchmark a CPU training step reaches: 0.5 matches the mean rate of the idle LoRA runs on the
# 2-core build machine (SST-2, 8 or 4 examples a micro-batch, 18 to 54 steps: 151 to 193 tokens/s, ~173 on average;
# the 193 is bench/data/cpu_runs' advised-plan run, which the estimate therefore puts 12% over).
# The optimizer step's rate, as the bandwidth of the estimate's 23 accesses a parameter: measured directly, an AdamW
# step with gradient clipping over 133M fp32 parameters takes 0.173 s on that machine (70 GB/s).
CPU_MFU = 0.50
CPU_INFERENCE_MFU = 0.8  # no-grad forwards on CPU (demo: 4-shot SST-2 scoring, ~64k prompt tokens, 2 min 14 s with its
# generations and latency sample; advisor/plan_time.py)
CPU_BANDWIDTH_GBS = 70.0
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


CPU_SAMPLES = 3  # benchmark runs kept, on separate invocations; the best counts


def cpu_gflops() -> float:
    """The cached CPU figure: the best of the first CPU_SAMPLES measurements, one per call, kept under the cache root.

    One reading taken while other processes held the cores (a test suite, another run) once poisoned every later
    estimate (~7 GFLOP/s cached on a machine that does ~200: LoRA predicted at 80 min instead of 5); later readings
    now outvote it. A cache with `"pinned": true` is used as it is (tests, or a figure the user chose)."""
    cache = paths.home() / CACHE_FILE
    data: dict = {}
    if cache.exists():
        try:
            data = json.loads(cache.read_text())
            if data.get("pinned"):
                return float(data["cpu_gflops"])
        except (ValueError, KeyError, TypeError, AttributeError):
            data = {}  # a corrupt cache is simply measured again
    older = data.get("samples") or ([data["cpu_gflops"]] if "cpu_gflops" in data else [])  # a pre-samples cache: one
    samples = [float(x) for x in older if isinstance(x, (int, float))]
    if len(samples) >= CPU_SAMPLES:
        return max(samples)
    samples.append(measure_cpu_gflops())
    write_json_atomic(cache, {"cpu_gflops": max(samples), "samples": samples, "cpu_count": os.cpu_count()})
    return max(samples)


def local_cpu(usd_per_hour: float = 0.10, gflops: float | None = None) -> Device:
    """This machine's CPU and RAM as a Device (RAM from psutil, throughput from the cached benchmark)."""
    import psutil

    memory = psutil.virtual_memory().total / GIB
    return Device("CPU", round(memory, 1), (gflops or cpu_gflops()) / 1000, usd_per_hour, CPU_MFU, is_gpu=False,
                  bandwidth_gbs=CPU_BANDWIDTH_GBS)


GPU_ALIASES = {"a10": "A10G", "4090": "RTX-4090"}  # what people type -> the table's row (A100 has two: no alias)


def find_gpu(name: str) -> Device | None:
    """Case- and punctuation-insensitive lookup: 'a100 80gb', 'A100-80GB' and 'a100_80gb' are one GPU; common short
    names ('a10', '4090') map through GPU_ALIASES."""
    key = "".join(ch for ch in name.lower() if ch.isalnum())
    if key in GPU_ALIASES:
        return GPUS[GPU_ALIASES[key]]
    for gpu in GPUS.values():
        if "".join(ch for ch in gpu.name.lower() if ch.isalnum()) == key:
            return gpu
    return None

"""Advisor tests run against a fixed CPU throughput, so estimates are deterministic and no test pays for the
matmul benchmark (test_estimate checks the benchmark itself)."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from advisor import hardware
from base import paths

FIXED_CPU_GFLOPS = 50.0


@pytest.fixture(autouse=True)
def fixed_cpu_benchmark(request, isolated_home):
    if request.node.get_closest_marker("integration") is not None:
        yield None  # the real cache root: leave its measured figure alone
        return
    cache = paths.home() / hardware.CACHE_FILE
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"cpu_gflops": FIXED_CPU_GFLOPS, "pinned": True}))
    yield cache


BENCH = Path(__file__).resolve().parents[2] / "bench"


def bench_module(name: str):
    """Import bench/<name>.py (a script, not a package) for a test module; yields it, then forgets it."""
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)

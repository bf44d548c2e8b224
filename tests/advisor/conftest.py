"""Advisor tests run against a fixed CPU throughput, so estimates are deterministic and no test pays for the
matmul benchmark (test_estimate checks the benchmark itself)."""
from __future__ import annotations

import json

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

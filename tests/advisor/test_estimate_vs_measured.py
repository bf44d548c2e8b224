"""bench/estimate_vs_measured.py: its pure comparison on hand-made RunResults shaped like `compare` writes them."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from advisor import estimate as est
from tests.advisor.conftest import bench_module
from advisor.hardware import GPUS
from base.results import ResultStore, RunResult, RunStatus



@pytest.fixture(scope="module")
def bench():
    yield from bench_module("estimate_vs_measured")


def lora_run(device: str = "cuda", peak_mb: float = 3000.0, seconds: float = 100.0) -> RunResult:
    """What runners.common.build_result writes: config is the RunSpec JSON, cost the measurements."""
    config = {"model": "smollm2-135m-instruct", "device": device, "dtype": "auto", "seed": 0,
              "strategy": {"strategy": "lora", "r": 8, "alpha": 16, "max_length": 256, "batch_size": 8,
                           "grad_checkpointing": False, "target_modules": ["q_proj", "v_proj"]}}
    return RunResult(run_id="sst2__lora__abc", task="sst2", strategy="lora", label="lora", status=RunStatus.ok,
                     config=config, config_hash="abc", model="smollm2-135m-instruct",
                     cost={"train_time_s": seconds, "tokens_per_s": 10_000.0, "examples_per_s": 250.0,
                           "train_tokens": 900_000, "epochs_done": 3.0, "peak_memory_mb": peak_mb})


def test_prediction_uses_the_runs_own_settings_and_token_count(bench):
    """Memory and time for the run's settings and its mean example (10,000 / 250 = 40 tokens); time for the tokens it
    trained on plus the held-out loss (10% of the examples, so 1/9 of the trained tokens) and 3 epoch checkpoints."""
    row = bench.compare_run(lora_run(), GPUS["H100"])
    shape = est.model_shape("smollm2-135m-instruct")
    setup = est.TrainSetup(strategy="lora", r=8, targets=("q_proj", "v_proj"), seq_len=256, batch=8, precision="bf16",
                           example_tokens=40.0)
    assert row.predicted_mb == pytest.approx(est.training_memory(shape, setup).total / 2**20)
    load = est.Workload(train_tokens=900_000, held_out_tokens=100_000, epochs=3.0)
    expected_s = (est.train_seconds(shape, setup, 900_000, GPUS["H100"])
                  + est.epoch_overhead_seconds(shape, setup, load, GPUS["H100"]))
    assert row.predicted_s == pytest.approx(expected_s)
    assert row.measured_mb == 3000.0 and row.measured_s == 100.0


def test_error_percentages_are_signed_against_the_measurement(bench):
    predicted = bench.compare_run(lora_run(), GPUS["H100"]).predicted_mb
    over = bench.compare_run(lora_run(peak_mb=predicted / 1.25), GPUS["H100"])
    assert over.memory_error_pct == pytest.approx(25.0)
    under = bench.compare_run(lora_run(peak_mb=predicted / 0.8), GPUS["H100"])
    assert under.memory_error_pct == pytest.approx(-20.0)
    assert bench.Comparison.error(1.0, None) is None and bench.Comparison.error(None, 5.0) is None


def test_cpu_runs_add_the_process_baseline_and_use_fp32(bench):
    cpu = est.Device("CPU", 64.0, 0.05, 0.1, 0.35, is_gpu=False)
    row = bench.compare_run(lora_run(device="cpu"), cpu)
    shape = est.model_shape("smollm2-135m-instruct")
    setup = est.TrainSetup(strategy="lora", r=8, targets=("q_proj", "v_proj"), precision="fp32", host=True,
                           example_tokens=40.0)
    assert row.predicted_mb == pytest.approx(est.training_memory(shape, setup).total / 2**20 + bench.RUNTIME_MB["cpu"])


def test_inference_runs_compare_memory_only(bench):
    result = lora_run()
    result.config["strategy"] = {"strategy": "few_shot", "k": 4}
    result.cost = {"peak_memory_mb": 400.0, "prompt_tokens_per_query": 300.0, "completion_tokens_per_query": 4.0}
    row = bench.compare_run(result, GPUS["H100"])
    assert row.predicted_s is None and row.time_error_pct is None
    assert 250 < row.predicted_mb < 400  # 135M params in bf16 plus a short KV cache


def test_main_prints_one_row_per_successful_run(bench, tmp_path, capsys):
    store = ResultStore(tmp_path)
    store.save(lora_run())
    failed = lora_run()
    failed.run_id, failed.status = "sst2__lora__failed", RunStatus.failed
    store.save(failed)
    assert bench.main([str(tmp_path), "--gpu", "H100", "--cpu-gflops", "50"]) == 0
    out = capsys.readouterr().out
    assert "sst2__lora__abc" in out and "sst2__lora__failed" not in out
    assert re.search(r"^[01]/1 runs within ±15%", out, re.M)
    assert bench.main([str(tmp_path / "empty")]) == 1


CPU_RUNS = Path(__file__).resolve().parents[2] / "bench" / "data" / "cpu_runs"


@pytest.fixture(scope="module")
def published():
    yield from bench_module("estimate_vs_published")


def test_host_estimates_hold_on_the_measured_cpu_runs(bench, published):
    """Peak RSS and train time of real CPU runs (bench/data/cpu_runs: what compare wrote on the 2-core build machine,
    whose matmul benchmark gave 204 GFLOP/s) within the ±15% target, and `advise`'s CPU bands cover their errors."""
    from advisor.hardware import local_cpu
    results = [r for r in ResultStore(CPU_RUNS).all() if r.status == RunStatus.ok]
    assert {r.strategy for r in results} >= {"lora", "qlora", "full_ft", "feature_based"}
    cpu = local_cpu(gflops=204.0)
    rows = [bench.compare_run(result, cpu) for result in results]
    off = {row.run_id: (round(row.memory_error_pct, 1), row.time_error_pct and round(row.time_error_pct, 1)) for row in rows}
    assert all(abs(memory) <= bench.TARGET_PCT and abs(seconds or 0) <= bench.TARGET_PCT for memory, seconds in off.values()), off
    assert sum(row.time_error_pct is not None for row in rows) == 5  # every trained run's time is compared
    assert published.p80_abs([row.memory_error_pct for row in rows]) <= est.ERROR_BANDS["cpu"]["memory"]
    assert published.p80_abs([row.time_error_pct for row in rows]) <= est.ERROR_BANDS["cpu"]["time"]

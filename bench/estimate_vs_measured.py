"""Predicted vs measured peak memory and training time for every run of a `compare` results directory.

    python bench/estimate_vs_measured.py results/demo [--cpu-gflops 17]

Reads the RunResult JSONs only (no torch): the run's config gives model, device, dtype and strategy settings;
its cost gives what was measured. Time is predicted for the tokens the run actually processed
(tokens_per_s x train_time_s), so the comparison tests the throughput and memory models, not a token count guess.
Target: within +-15%.

CPU peak memory is the process RSS (runners.common.PeakMemory), which includes the Python + torch runtime; the host
estimate counts it (advisor.estimate.HOST_RUNTIME_BYTES: the runner's imports — torch, transformers, peft — hold
~435 MB RSS on the build machine), so what `advise` shows and what this compares are the same figure.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from advisor import estimate as est  # noqa: E402
from advisor.hardware import GIB, GPUS, local_cpu  # noqa: E402

RUNTIME_MB = {"cpu": 0.0, "cuda": 0.0}  # process baseline beyond the estimate's own (the host estimate includes it)
TARGET_PCT = 15.0


@dataclass
class Comparison:
    run_id: str
    strategy: str
    predicted_mb: float
    measured_mb: float | None
    predicted_s: float | None
    measured_s: float | None

    @staticmethod
    def error(predicted: float | None, measured: float | None) -> float | None:
        if predicted is None or not measured:
            return None
        return (predicted - measured) / measured * 100

    @property
    def memory_error_pct(self) -> float | None:
        return self.error(self.predicted_mb, self.measured_mb)

    @property
    def time_error_pct(self) -> float | None:
        return self.error(self.predicted_s, self.measured_s)


def setup_from_config(config: dict, cost: dict) -> est.TrainSetup:
    """The estimate's settings from a RunResult: its config (RunSpec JSON: strategy settings + device + dtype), and
    the mean tokens of the examples it trained on (measured: tokens over examples a second)."""
    device = config.get("device", "cpu")
    dtype = config.get("dtype", "auto")
    precision = "fp32" if dtype == "float32" or (dtype == "auto" and device != "cuda") else "bf16"
    example_tokens = (cost.get("tokens_per_s") or 0) / cost["examples_per_s"] if cost.get("examples_per_s") else 0.0
    return est.setup_for(config.get("strategy") or {"strategy": "zero_shot"}, host=device != "cuda",
                         precision=precision, example_tokens=example_tokens)


def compare_run(result, device: est.Device, shape: est.ModelShape | None = None) -> Comparison:
    """One run's prediction next to its measurement. Inference-only runs compare memory at an 8-query batch."""
    config = result.config or {}
    shape = shape or est.model_shape(config.get("model") or result.model)
    cost = result.cost or {}
    setup = setup_from_config(config, cost)
    device_kind = "cuda" if config.get("device") == "cuda" else "cpu"
    trained = est.trains(setup.strategy)
    if trained:
        memory = est.training_memory(shape, setup)
        tokens = cost.get("train_tokens") or (cost.get("tokens_per_s") or 0) * (cost.get("train_time_s") or 0)
        held_out = (config.get("strategy") or {}).get("eval_fraction", 0.1)
        load = est.Workload(train_tokens=tokens, held_out_tokens=tokens * held_out / (1 - held_out),
                            epochs=cost.get("epochs_done") or 1.0)
        predicted_s = (est.train_seconds(shape, setup, tokens, device)
                       + est.epoch_overhead_seconds(shape, setup, load, device)) if tokens else None
    elif est.kind(setup.strategy) == "features":
        memory = est.feature_memory(shape, setup.precision, cost.get("prompt_tokens_per_query") or 64, host=setup.host)
        predicted_s = None
    else:
        prompt = int((cost.get("prompt_tokens_per_query") or 64) + (cost.get("completion_tokens_per_query") or 0))
        memory = est.inference_memory(shape, setup.precision, seq_len=prompt, batch=1, host=setup.host)
        predicted_s = None
    return Comparison(
        run_id=result.run_id, strategy=result.label, predicted_mb=memory.total / 2**20 + RUNTIME_MB[device_kind],
        measured_mb=cost.get("peak_memory_mb"), predicted_s=predicted_s,
        measured_s=cost.get("train_time_s") if trained else None,
    )


ADVICE_TARGET_PCT = 25.0


def advice_rows(results: list, advice: dict) -> list[tuple[str, float, float, float | None, float | None]]:
    """What `advise` showed before the runs (advice.json, copied into the results by `compare`) beside what each
    trained run measured: (label, predicted MB, measured MB, predicted s, measured s)."""
    estimates = advice.get("estimates") or {}
    rows = []
    for result in results:
        estimate = estimates.get(result.strategy)
        cost = result.cost or {}
        if not estimate or not cost.get("train_time_s"):
            continue
        rows.append((result.label, estimate["peak_memory_gib"] * 1024, cost.get("peak_memory_mb"),
                     estimate["train_hours"] * 3600, cost.get("train_time_s")))
    return rows


def _fmt(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--cpu-gflops", type=float, default=None, help="override the cached CPU benchmark")
    parser.add_argument("--gpu", default="H100", help=f"GPU of the runs made on cuda ({', '.join(GPUS)})")
    args = parser.parse_args(argv)
    from base.results import ResultStore

    results = [r for r in ResultStore(args.results).all() if r.status.value == "ok"]
    if not results:
        print(f"no successful runs under {args.results}/runs", file=sys.stderr)
        return 1
    cpu, gpu = local_cpu(gflops=args.cpu_gflops), GPUS[args.gpu]
    print(f"{'run':<44} {'pred MB':>9} {'meas MB':>9} {'err %':>7} {'pred s':>8} {'meas s':>8} {'err %':>7}")
    misses = 0
    for result in results:
        row = compare_run(result, gpu if (result.config or {}).get("device") == "cuda" else cpu)
        errors = [e for e in (row.memory_error_pct, row.time_error_pct) if e is not None]
        misses += any(abs(e) > TARGET_PCT for e in errors)
        print(f"{row.run_id[:44]:<44} {row.predicted_mb:>9.0f} {_fmt(row.measured_mb, '9.0f'):>9} "
              f"{_fmt(row.memory_error_pct, '+7.1f'):>7} {_fmt(row.predicted_s, '8.1f'):>8} "
              f"{_fmt(row.measured_s, '8.1f'):>8} {_fmt(row.time_error_pct, '+7.1f'):>7}")
    print(f"{len(results) - misses}/{len(results)} runs within ±{TARGET_PCT:g}% "
          f"(CPU {cpu.tflops * 1000:.1f} GFLOP/s x MFU {cpu.mfu}; 1 GiB = {GIB} B)")
    advice_file = Path(args.results) / "advice.json"
    if advice_file.exists():
        import json

        rows = advice_rows(results, json.loads(advice_file.read_text(encoding="utf-8")))
        print(f"\nWhat `advise` estimated before the runs vs what they measured (target ±{ADVICE_TARGET_PCT:g}%):")
        print(f"{'run':<20} {'advised MB':>10} {'meas MB':>9} {'err %':>7} {'advised s':>9} {'meas s':>8} {'err %':>7}")
        for label, pred_mb, meas_mb, pred_s, meas_s in rows:
            print(f"{label[:20]:<20} {pred_mb:>10.0f} {_fmt(meas_mb, '9.0f'):>9} "
                  f"{_fmt(Comparison.error(pred_mb, meas_mb), '+7.1f'):>7} {pred_s:>9.1f} {_fmt(meas_s, '8.1f'):>8} "
                  f"{_fmt(Comparison.error(pred_s, meas_s), '+7.1f'):>7}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

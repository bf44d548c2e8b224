"""Our peak-memory and time estimates against published GPU fine-tuning runs, beside the rules of thumb and
`accelerate estimate-memory`'s figure.

    python bench/estimate_vs_published.py [--table bench/data/published_training_peaks.csv] [--no-accelerate]

Every row of the table names its source (repository, file, commit, date) and the settings the run used. Rows marked
`fit:memory` set the memory constants of advisor/estimate.py (logit bytes with plain and chunked cross-entropy, the
torch.compile activation factor), rows marked `fit:time` the MFU of their GPU (advisor/hardware.py); every other
row is held out, and the medians are also given over held-out rows only (`--fit` re-derives the constants).

Estimators, per row:
- ours: advisor.estimate.training_memory with the row's settings; compared with the measure the source published
  (allocated/active tensors, or what the caching allocator reserved).
- rule of thumb "bytes/param": full fine-tuning 16 GB per 1B parameters, inference (frozen weights) 2 GB per 1B
  (modal.com/blog/how-much-vram-need-fine-tuning, 2024-09-01), 4-bit weights 0.5 byte per parameter
  (spheron.network/blog/gpu-vram-requirements-fine-tune-llm-2026): adapters are counted as their frozen base.
- rule of thumb "static": weights + gradients + fp32 AdamW moments, no activations (2N + 2N + 4N + 4N for full
  bf16 training; desty.github.io/study-tiny-llm/en/part3/11-param-memory): adapters add 12 bytes per trainable one.
- accelerate: `accelerate estimate-memory`'s own functions (calculate_maximum_sizes, estimate_training_usage) on an
  empty (meta-device) model built from the row's shape: "training using Adam" for full fine-tuning in float16,
  and, since it has no notion of adapters, the model's load size (float16, int4 for QLoRA) for adapter rows.
"""
from __future__ import annotations

import argparse
import csv
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from advisor import estimate as est  # noqa: E402
from advisor.hardware import GPUS, REFERENCE_GPUS, Device  # noqa: E402

TABLE = Path(__file__).resolve().parent / "data" / "published_training_peaks.csv"
UNITS = {"B": 1.0, "GB": 1e9, "GiB": 2**30}
MEMORY_TARGET_MEDIAN, MEMORY_TARGET_ROW, TIME_TARGET = 10.0, 25.0, 30.0


@dataclass
class Row:
    id: str
    role: str
    gpu: str
    method: str
    shape: est.ModelShape
    setup: est.TrainSetup
    measure: str
    published_bytes: float
    tokens_per_s: float | None
    train_tokens: float | None
    train_time_s: float | None
    train_steps: int | None
    source: str


def _flag(value: str) -> bool:
    return value.strip() in ("1", "true", "yes")


def _number(value: str) -> float | None:
    return float(value) if value.strip() else None


def load_table(path: Path = TABLE) -> list[Row]:
    rows = []
    with open(path, newline="", encoding="utf-8") as handle:
        for raw in csv.DictReader(handle):
            shape = est.ModelShape(raw["model"], int(raw["hidden"]), int(raw["layers"]), int(raw["heads"]),
                                   int(raw["kv_heads"]), int(raw["intermediate"]), int(raw["vocab"]), _flag(raw["tied"]))
            method = raw["method"]
            strategy = "qlora" if method.startswith("qlora") else method
            targets = tuple(raw["targets"].split()) or ("q_proj", "k_proj", "v_proj", "o_proj")
            setup = est.TrainSetup(
                strategy=strategy, seq_len=int(raw["seq_len"]), batch=int(raw["batch"]),
                grad_checkpointing=_flag(raw["grad_ckpt"]), precision=raw["precision"], optimizer=raw["optimizer"],
                optimizer_in_backward=_flag(raw["opt_in_bwd"]), r=int(raw["rank"] or 8), targets=targets,
                num_virtual_tokens=int(raw["virtual_tokens"] or 16), double_quant=method != "qlora_single_quant",
                lora_dropout="dropout 0.05" in raw["notes"] or raw["source"].startswith("LitGPT"),
                compile=_flag(raw["compile"]), loss=raw["loss"], activation_offloading=_flag(raw["act_offload"]),
                adapter_precision=raw["adapter_dtype"] or "fp32",
            )
            rows.append(Row(raw["id"], raw["role"], raw["gpu"], method, shape, setup, raw["peak_measure"],
                            float(raw["peak"]) * UNITS[raw["peak_unit"]], _number(raw["tokens_per_s"]),
                            _number(raw["train_tokens"]), _number(raw["train_time_s"]),
                            int(raw["train_steps"]) if raw.get("train_steps", "").strip() else None,
                            f"{raw['repo']}:{raw['path']}@{raw['commit'][:10]}"))
    return rows


def device(name: str) -> Device:
    return GPUS.get(name) or REFERENCE_GPUS[name]


# --- estimators -------------------------------------------------------------------------------------------


def ours(row: Row) -> float:
    memory = est.training_memory(row.shape, row.setup)
    return memory.total if row.measure == "max_reserved" else memory.allocated


def rule_bytes_per_param(row: Row) -> float:
    n = row.shape.params
    if est.kind(row.setup.strategy) == "full":
        return 16e9 * n / 1e9
    if row.setup.strategy == "qlora":
        return 0.5 * n
    return 2e9 * n / 1e9


def rule_static(row: Row) -> float:
    n = row.shape.params
    if est.kind(row.setup.strategy) == "full":
        return n * (2 + 2 + 4 + 4)
    return est.weight_bytes(row.shape, row.setup) + 12 * est.trainable_params(row.shape, row.setup)


def accelerate_figure(row: Row) -> float | None:
    """accelerate's own arithmetic on an empty model of this shape (None when accelerate/transformers are missing)."""
    try:
        import torch
        from accelerate import init_empty_weights
        from accelerate.commands.estimate import estimate_training_usage
        from accelerate.utils import calculate_maximum_sizes
        from transformers import LlamaConfig, LlamaForCausalLM
    except ImportError:
        return None
    s = row.shape
    config = LlamaConfig(hidden_size=s.hidden, num_hidden_layers=s.layers, num_attention_heads=s.heads,
                         num_key_value_heads=s.kv_heads, intermediate_size=s.intermediate, vocab_size=s.vocab,
                         tie_word_embeddings=s.tied)
    with init_empty_weights():
        model = LlamaForCausalLM(config).to(torch.float32)
    total_fp32, _ = calculate_maximum_sizes(model)
    if est.kind(row.setup.strategy) == "full":
        return float(max(estimate_training_usage(total_fp32, "float16").values()))
    return total_fp32 / (8 if row.setup.strategy == "qlora" else 2)


def our_seconds_per_token(row: Row) -> float | None:
    """Predicted seconds per trained token, on the micro-batch the run used: full rows when packed, else the
    published mean tokens per step (and its mean sequence for attention)."""
    gpu = device(row.gpu)
    setup = row.setup
    if row.train_tokens and row.train_steps:
        per_step = row.train_tokens / row.train_steps
        setup = est.replace(setup, seq_len=max(1, round(per_step / setup.batch)))
    else:
        per_step = est.tokens_per_batch(setup)
    return est.train_seconds(row.shape, setup, 1e6, gpu, tokens_per_step=per_step) / 1e6


def published_seconds_per_token(row: Row) -> float | None:
    if row.train_tokens and row.train_time_s:
        return row.train_time_s / row.train_tokens
    if row.tokens_per_s:
        return 1 / row.tokens_per_s
    return None


# --- report -----------------------------------------------------------------------------------------------


def error_pct(predicted: float | None, published: float | None) -> float | None:
    if predicted is None or not published:
        return None
    return (predicted - published) / published * 100


def median_abs(values: list[float | None]) -> float | None:
    present = [abs(v) for v in values if v is not None]
    return statistics.median(present) if present else None


def p80_abs(values: list[float | None]) -> float | None:
    """The |error| that 80% of the rows stay within: the band `advise` shows (advisor.estimate.ERROR_BANDS)."""
    present = sorted(abs(v) for v in values if v is not None)
    return present[min(len(present) - 1, int(0.8 * len(present)))] if present else None


def evaluate(rows: list[Row], with_accelerate: bool = True) -> dict:
    """Per row: each estimator's figure and signed error; per estimator: median |error| (all rows, and held-out)."""
    estimators = {"ours": ours, "bytes/param": rule_bytes_per_param, "static": rule_static}
    if with_accelerate:
        estimators["accelerate"] = accelerate_figure
    table = []
    for row in rows:
        figures = {name: fn(row) for name, fn in estimators.items()}
        time_pred, time_pub = our_seconds_per_token(row), published_seconds_per_token(row)
        table.append({"row": row, "figures": figures,
                      "errors": {name: error_pct(v, row.published_bytes) for name, v in figures.items()},
                      "time_error": error_pct(time_pred, time_pub) if time_pub else None})
    summary = {}
    for name in estimators:
        summary[name] = {
            "all": median_abs([t["errors"][name] for t in table]),
            "holdout": median_abs([t["errors"][name] for t in table if "memory" not in t["row"].role]),
            "rows": sum(t["errors"][name] is not None for t in table),
            "p80": p80_abs([t["errors"][name] for t in table]),
        }
    summary["time"] = {"all": median_abs([t["time_error"] for t in table]),
                       "holdout": median_abs([t["time_error"] for t in table if "time" not in t["row"].role]),
                       "rows": sum(t["time_error"] is not None for t in table),
                       "p80": p80_abs([t["time_error"] for t in table])}
    return {"table": table, "summary": summary, "estimators": list(estimators)}


# --- the fit: which constants the `fit` rows set --------------------------------------------------------------

MEMORY_FITS = (  # (module, constant, rows that set it, grid), fitted in this order
    (est, "LOGIT_BYTES", ("tt32-3b-packed",), [x / 2 for x in range(8, 41)]),
    (est, "COMPILE_ACTIVATION_FACTOR", ("tt32-3b-compile",), [x / 100 for x in range(40, 101)]),
    (est, "LOGIT_BYTES_CHUNKED", ("tt32-3b-chunked-ce", "tt32-3b-lora"), [x / 4 for x in range(0, 33)]),
)
MFU_FITS = {"L40S": "peft-lora-r32", "RTX-4090": "tt31-8b-lora-4090", "A100-80GB": "tt32-3b-compile"}


def _log_error(predicted: float, published: float) -> float:
    import math

    return math.log(predicted / published) ** 2


def fit(rows: list[Row]) -> dict[str, float]:
    """Re-derive the fitted constants from the `fit` rows alone (grid search, squared log error), in order.
    Prints what the code should hold; the code's values are checked against this in tests/advisor."""
    by_id = {row.id: row for row in rows}
    fitted: dict[str, float] = {}
    for module, name, ids, grid in MEMORY_FITS:
        best = min(grid, key=lambda value: (setattr(module, name, value),
                                            sum(_log_error(ours(by_id[i]), by_id[i].published_bytes) for i in ids))[1])
        setattr(module, name, best)
        fitted[name] = best
    for gpu_name, row_id in MFU_FITS.items():
        gpu, row = device(gpu_name), by_id[row_id]
        ratio = our_seconds_per_token(row) / published_seconds_per_token(row)
        fitted[f"mfu[{gpu_name}]"] = round(gpu.mfu * ratio, 3)  # time scales as 1/MFU
    return fitted


def _cell(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--table", type=Path, default=TABLE)
    parser.add_argument("--no-accelerate", action="store_true", help="skip accelerate's figure (no torch import)")
    parser.add_argument("--fit", action="store_true", help="print the constants the `fit` rows alone give, and exit")
    args = parser.parse_args(argv)
    if args.fit:
        for name, value in fit(load_table(args.table)).items():
            print(f"{name} = {value:g}")
        return 0
    result = evaluate(load_table(args.table), with_accelerate=not args.no_accelerate)
    names = result["estimators"]
    header = f"{'row':<24} {'role':<15} {'gpu':<9} {'published':>9}" + "".join(f" {n:>11} {'err%':>6}" for n in names)
    print("Peak memory, GB (1e9 bytes) — published vs estimated")
    print(header + f" {'time err%':>9}")
    for entry in result["table"]:
        row = entry["row"]
        line = f"{row.id:<24} {row.role:<15} {row.gpu:<9} {row.published_bytes / 1e9:>9.2f}"
        for name in names:
            value = entry["figures"][name]
            line += f" {_cell(None if value is None else value / 1e9, '11.2f')} {_cell(entry['errors'][name], '+6.0f')}"
        print(line + f" {_cell(entry['time_error'], '+9.0f')}")
    print()
    print("Median |relative error| per estimator (all rows / rows held out from that quantity's fit):")
    for name in names + ["time"]:
        s = result["summary"][name]
        label = "ours: time (s per token)" if name == "time" else name
        print(f"  {label:<26} {_cell(s['all'], '5.1f')}% / {_cell(s['holdout'], '5.1f')}%  over {s['rows']} rows"
              f"  (80% of rows within ±{_cell(s['p80'], '.1f')}%)")
    worst = max(abs(e["errors"]["ours"]) for e in result["table"])
    worst_time = max((abs(e["time_error"]) for e in result["table"] if e["time_error"] is not None), default=0.0)
    print(f"Targets: ours median <= {MEMORY_TARGET_MEDIAN:g}% (got {result['summary']['ours']['all']:.1f}%), "
          f"every row <= {MEMORY_TARGET_ROW:g}% (worst {worst:.1f}%), time <= {TIME_TARGET:g}% (worst {worst_time:.1f}%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

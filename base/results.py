"""RunResult and the results store: one JSON per run, written atomically, keyed by the run's config hash.

The store is the only thing reports read, and what lets a repeated `compare` skip finished runs.
Layout of a results directory:
    runs/<run_id>.json                 one RunResult each
    artifacts/<run_id>/                predictions.jsonl, adapters, checkpoints
    base/                              cached base-model scores (forgetting)
"""
from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from enum import Enum
from importlib import metadata
from pathlib import Path
from typing import Any

from base import paths
from base.errors import AdaptError
from base.io import write_json_atomic


# 2: classification/multiple choice ranked by label log-likelihood by default; metrics record `scoring` and
#    `format_compliance`; the task config records `prompt_format`. 1 (no field): classification scored on generations.
SCHEMA_VERSION = 2


class RunStatus(str, Enum):
    ok = "ok"
    failed = "failed"


@dataclass
class RunResult:
    """What one (task, strategy) run measured.

    metrics: {"accuracy": .8, "accuracy_ci": [lo, hi], "macro_f1": ..., "exact_match": ..., "f1": ...,
              "n": 200, "retrieval_hit_rate": ...} — `primary_metric` names the headline one.
    cost: train_time_s, examples_per_s, tokens_per_s, peak_memory_mb, trainable_params, total_params,
          adapter_size_mb, latency_p50_s, latency_p95_s, prompt_tokens_per_query,
          completion_tokens_per_query, usd_train, usd_per_1m_queries.
    forgetting: {"benchmarks": {name: {base, adapted, delta, ci_low, ci_high, n, dropped}},
                 "retained": mean adapted/base, "perplexity": {base, adapted}}
    curves: {"train_loss": [[step, loss], ...], "eval_loss": [[epoch, loss], ...]}
    """

    run_id: str
    task: str
    strategy: str  # the strategy's kind, e.g. "lora"
    label: str  # the plan's name for this run, e.g. "lora-r16" (equals strategy when not set)
    status: RunStatus
    config: dict[str, Any]
    config_hash: str
    primary_metric: str = "accuracy"
    metrics: dict[str, Any] = field(default_factory=dict)
    cost: dict[str, Any] = field(default_factory=dict)
    forgetting: dict[str, Any] = field(default_factory=dict)
    curves: dict[str, Any] = field(default_factory=dict)
    predictions_file: str | None = None  # relative to the results directory
    artifact_dir: str | None = None  # relative to the results directory
    error: str | None = None
    seed: int = 0
    model: str = ""
    hashes: dict[str, Any] = field(default_factory=dict)  # model and data digests
    env: dict[str, Any] = field(default_factory=dict)
    started_at: str | None = None
    finished_at: str | None = None
    duration_s: float | None = None
    schema_version: int = SCHEMA_VERSION

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = self.status.value
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "RunResult":
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        known["status"] = RunStatus(known["status"])
        known.setdefault("schema_version", 1)  # written before the field existed
        return cls(**known)

    @property
    def scoring(self) -> str:
        """How the primary metric was scored: `rank` or `generate` (schema 1 ranked only multiple choice)."""
        if "scoring" in self.metrics:
            return str(self.metrics["scoring"])
        task = (self.config or {}).get("task") or {}
        return task.get("scoring") or ("rank" if task.get("type") == "multiple_choice" else "generate")


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


PACKAGES = ("adaptlab", "torch", "transformers", "peft", "bitsandbytes", "sentence-transformers",
            "faiss-cpu", "lm-eval", "accelerate", "datasets")


def environment() -> dict[str, Any]:
    """Versions and hardware, for the reproducibility footer."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        # 1/5/15-minute load when the run ended: above cpu_count, other work shared the cores and times are inflated
        "load_average": [round(load, 2) for load in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "packages": versions,
    }
    try:
        import torch

        env["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            env["gpu"] = torch.cuda.get_device_name(0)
            env["gpu_count"] = torch.cuda.device_count()
    except ImportError:
        pass
    return env


class ResultStore:
    """A results directory: one JSON per run; finished runs are found by id to skip them on re-run."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.runs_dir = self.root / "runs"

    def path_for(self, run_id: str) -> Path:
        """runs/<run_id>.json; a run id that is not a plain file name, or would leave the folder, is refused."""
        paths.check_name(run_id, field="run id", pattern=paths.SAFE_RUN_ID)
        return paths.inside(self.runs_dir, f"{run_id}.json")

    def save(self, result: RunResult) -> Path:
        path = self.path_for(result.run_id)
        write_json_atomic(path, result.to_json())
        return path

    def get(self, run_id: str) -> RunResult | None:
        path = self.path_for(run_id)
        return read_run(path) if path.exists() else None

    def is_done(self, run_id: str) -> bool:
        """A run counts as done only when it succeeded: failed runs are retried on the next compare."""
        result = self.get(run_id)
        return result is not None and result.status is RunStatus.ok

    def all(self) -> list[RunResult]:
        return load_runs(self.root)


def read_run(path: Path) -> RunResult:
    """One run JSON; a corrupt file is named, never skipped silently."""
    try:
        return RunResult.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        raise AdaptError(f"cannot read this run result: {error}", file=path,
                         hint="re-run `adapt compare` for this run, or delete the file to leave it out") from error


def load_runs(results_dir: str | Path) -> list[RunResult]:
    """Every RunResult under RESULTS_DIR/runs, in file-name order (the one results loader: compare, advise, report)."""
    runs_dir = Path(results_dir) / "runs"
    return [read_run(path) for path in sorted(runs_dir.glob("*.json"))] if runs_dir.is_dir() else []

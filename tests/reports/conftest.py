"""Hand-made results directories, written the way `adapt compare` writes them (ResultStore), for report tests.

The sst2 story: full_ft scores best (0.84) but loses general ability; lora (0.82) is inside full_ft's 95%
interval and costs less, so the report must recommend lora; few_shot (0.78) is outside it; qlora failed.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest

from base.io import write_json_atomic, write_jsonl_atomic
from base.results import ResultStore, RunResult, RunStatus

SCRIPT_PAYLOAD = "<script>document.title='pwned'</script>"
ENV = {"python": "3.11.9", "platform": "Linux-6.1-x86_64", "cpu_count": 2,
       "packages": {"adaptlab": "0.1.0", "torch": "2.13.0", "transformers": "5.23.0"}}

# id -> (prompt, target); example "2" carries a script, a pipe and a newline from the "dataset".
EXAMPLES = {
    "1": ("the movie was great", "positive"),
    "2": (f"awful | boring\nfilm {SCRIPT_PAYLOAD}", "negative"),
    "3": ("a wonderful cast", "positive"),
    "4": ("terrible dialogue", "negative"),
}
# label -> predictions for ids 1..4
PREDICTIONS = {
    "zero_shot": ["positive", "positive", "negative", "negative"],
    "few_shot": ["positive", "negative", "negative", "negative"],
    "lora": ["positive", "negative", "positive", "negative"],
    "full_ft": ["positive", "negative", "positive", "negative"],
}


def make_run(task: str = "sst2", strategy: str = "lora", label: str | None = None, *, status: str = "ok",
             score: float | None = 0.8, ci: tuple[float, float] | None = (0.75, 0.85), n: int = 200,
             cost: dict[str, Any] | None = None, forgetting: dict[str, Any] | None = None,
             curves: dict[str, Any] | None = None, error: str | None = None,
             predictions_file: str | None = None) -> RunResult:
    label = label or strategy
    metrics: dict[str, Any] = {}
    if score is not None:
        metrics = {"accuracy": score, "n": n}
        if ci is not None:
            metrics["accuracy_ci"] = list(ci)
    return RunResult(
        run_id=f"{task}__{label}__abc123", task=task, strategy=strategy, label=label,
        status=RunStatus(status), config={"strategy": {"kind": strategy}}, config_hash="abc123",
        primary_metric="accuracy", metrics=metrics, cost=cost or {}, forgetting=forgetting or {},
        curves=curves or {}, error=error, seed=0, model="smollm2-135m-instruct",
        hashes={"model": "sha256:m0d31", "eval": "sha256:da7a"}, env=ENV, predictions_file=predictions_file,
    )


def _cost(train_s: float, memory: float, trainable: float, adapter: float, p50: float, prompt: float,
          usd_train: float, usd_1m: float) -> dict[str, Any]:
    return {"train_time_s": train_s, "peak_memory_mb": memory, "trainable_params": trainable,
            "total_params": 134_515_008, "adapter_size_mb": adapter, "latency_p50_s": p50,
            "latency_p95_s": p50 * 1.5, "prompt_tokens_per_query": prompt, "completion_tokens_per_query": 2,
            "usd_train": usd_train, "usd_per_1m_queries": usd_1m}


def _forgetting(adapted: float, retained: float, ci: tuple[float, float]) -> dict[str, Any]:
    base = 0.36
    return {"benchmarks": {"arc_easy": {"base": base, "adapted": adapted, "delta": round(adapted - base, 4),
                                        "ci_low": ci[0], "ci_high": ci[1], "n": 100, "dropped": ci[1] < 0},
                           "piqa": {"base": 0.60, "adapted": 0.60 * retained, "delta": round(0.60 * retained - 0.60, 4),
                                    "ci_low": -0.03, "ci_high": 0.01, "n": 100, "dropped": False}},
            "retained": retained, "perplexity": {"base": 12.0, "adapted": 12.5}}


def sst2_runs() -> list[RunResult]:
    curve = lambda start: [[step, start * 0.9 ** (step / 10)] for step in range(0, 101, 10)]  # noqa: E731
    return [
        make_run(strategy="zero_shot", score=0.60, ci=(0.53, 0.67),
                 cost=_cost(0, 600, 0, 0, 0.10, 60, 0.0, 5.0)),
        make_run(strategy="few_shot", score=0.78, ci=(0.72, 0.84),
                 cost=_cost(0, 700, 0, 0, 0.30, 400, 0.0, 20.0)),
        make_run(strategy="lora", score=0.82, ci=(0.77, 0.87),
                 cost=_cost(600, 1500, 460_800, 1.8, 0.11, 60, 3.0, 5.0),
                 forgetting=_forgetting(0.35, 0.99, (-0.04, 0.02)),
                 curves={"train_loss": curve(2.0), "eval_loss": [[1, 1.4], [2, 1.2]]}),
        make_run(strategy="full_ft", score=0.84, ci=(0.79, 0.89),
                 cost=_cost(2400, 2600, 134_515_008, 517.0, 0.11, 60, 12.0, 5.0),
                 forgetting=_forgetting(0.30, 0.90, (-0.10, -0.02)),
                 curves={"train_loss": curve(2.2), "eval_loss": [[1, 1.3], [2, 1.25]]}),
        make_run(strategy="qlora", status="failed", score=None,
                 error="Traceback (most recent call last):\n  File \"x.py\", line 1\nRuntimeError: out of memory | retry"),
    ]


def write_results(root: Path, runs: list[RunResult], predictions: bool = True) -> Path:
    store = ResultStore(root)
    for run in runs:
        if predictions and run.label in PREDICTIONS and run.status is RunStatus.ok:
            relative = f"artifacts/{run.run_id}/predictions.jsonl"
            demos = "Examples: great -> positive\n" if run.label == "few_shot" else ""
            rows = [{"id": key, "input": prompt, "prompt": f"<|im_start|>user\n{demos}{prompt}<|im_end|>",
                     "prediction": predicted, "target": target, "correct": predicted == target}
                    for (key, (prompt, target)), predicted in zip(EXAMPLES.items(), PREDICTIONS[run.label])]
            write_jsonl_atomic(root / relative, rows)
            run.predictions_file = relative
        store.save(run)
    return root


@pytest.fixture()
def sst2_results(tmp_path) -> Path:
    return write_results(tmp_path / "results", sst2_runs())


def write_optional_files(root: Path) -> None:
    """advice.json and compare.json, as `adapt advise` and `adapt compare` leave them."""
    write_json_atomic(root / "advice.json", {
        "ranking": [{"strategy": "lora", "score": 0.9}, {"strategy": "few_shot", "score": 0.7},
                    {"strategy": "full_ft", "score": 0.5}],
        "fired": [{"id": "enough-labels", "because": "2,000 labelled examples are enough for LoRA"}],
        "estimates": {"lora": {"strategy": "lora", "peak_memory_gib": 1.6, "train_hours": 0.2, "usd_train": 2.5,
                               "usd_per_1m_queries": 5.0},
                      "full_ft": {"strategy": "full_ft", "peak_memory_gib": 2.4, "train_hours": 0.5, "usd_train": 10.0,
                                  "usd_per_1m_queries": 5.0}},
        "estimated_on": "L4",
    })
    write_json_atomic(root / "compare.json", {"command": "adapt compare plan.yaml", "plan_path": "/work/plan.yaml",
                                              "plan": {"model": "smollm2-135m-instruct", "tasks": []},
                                              "started_at": "2026-11-02T10:00:00+00:00"})


@pytest.fixture()
def results_factory(tmp_path) -> Callable[..., Path]:
    """Write any list of runs as a results directory."""
    def factory(runs: list[RunResult], name: str = "custom", predictions: bool = False) -> Path:
        return write_results(tmp_path / name, runs, predictions=predictions)
    return factory


@pytest.fixture()
def run_maker() -> Callable[..., RunResult]:
    """`make_run` for tests (conftest modules are not importable under --import-mode=importlib)."""
    return make_run


@pytest.fixture()
def sst2_run_list() -> list[RunResult]:
    return sst2_runs()


@pytest.fixture(scope="session")
def sst2_report(tmp_path_factory):
    """The sst2 results with advice.json and compare.json, built once: drawing the plots takes seconds."""
    from reports.build import build_report

    root = write_results(tmp_path_factory.mktemp("shared") / "results", sst2_runs())
    write_optional_files(root)
    return build_report(root)

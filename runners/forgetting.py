"""Forgetting checks: does adapting a model cost it general ability? Base vs adapted on the same benchmark items.

Benchmarks are lm-eval multiple-choice tasks (acc, acc_norm) over the bundled offline data
(`configs/tasks/<name>.yaml` → `{data}/benchmarks/<name>.jsonl`); any other name is handed to lm-eval's own
task registry (works when the hub is reachable). Each benchmark is scored per item on base and adapted model
alike, so the delta gets a *paired* bootstrap interval; a drop whose interval lies below zero is flagged.
The base model's per-item scores are cached on disk by (model digest, benchmark, limit, task and data digest),
so comparing several adapters of one base pays for the base once.
A cheap proxy needing no benchmark: token-weighted perplexity on held-out general text, base vs adapted.

Under a multi-process launch every process takes part: lm-eval's evaluator gives each its share of a benchmark's
requests and gathers the per-item results on process 0 (the HFLM's rank and world size come from accelerate's
PartialState, see `wrap_model`), the perplexity texts are split the same way (runners.shards), and process 0 alone
writes the cache and returns the result.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from base import paths
from base.errors import AdaptError
from base.plan import ForgettingSettings
from base.progress import bar, showing
from runners import shards
from runners.scoring import inference_mode
from runners.stats import paired_bootstrap_ci

TASKS_DIR = paths.CONFIGS_DIR / "tasks"
TASK_TEMPLATE = "_adaptlab_mc.yaml"  # shared shape, included by every benchmark YAML
PLACEHOLDER = "{benchmarks}"  # replaced with the absolute benchmark folder at run time
BOOTSTRAP_ITERS = 2000
PERPLEXITY_MAX_TOKENS = 256
BATCH_SIZE = 8


def bundled_benchmarks() -> list[str]:
    """Benchmarks with a shipped task YAML (they run offline on provisioned data)."""
    return sorted(path.stem for path in TASKS_DIR.glob("*.yaml") if not path.name.startswith("_"))


def benchmarks_dir() -> Path:
    return paths.data_dir() / "benchmarks"


def general_text_path() -> Path:
    return paths.data_dir() / "general_text.jsonl"


def default_cache_dir() -> Path:
    """Where `adapt forget` keeps base-model scores; `compare` passes its results dir's `base/` instead."""
    return paths.home() / "forgetting-cache"


# --- statistics ------------------------------------------------------------------------------------------


def paired_bootstrap(base: Sequence[float], adapted: Sequence[float], iters: int = BOOTSTRAP_ITERS,
                     seed: int = 0) -> tuple[float, float]:
    """95% interval of mean(adapted) - mean(base), resampling items with the same indices for both models."""
    return paired_bootstrap_ci(base, adapted, resamples=iters, seed=seed)


def compare_items(base: "ItemScores", adapted: "ItemScores") -> dict[str, Any]:
    """One benchmark's row: scores, delta, paired interval, and whether the drop is real (interval below zero)."""
    if base.ids != adapted.ids:
        raise RuntimeError(f"{base.benchmark}: base and adapted were scored on different items; cannot pair them")
    low, high = paired_bootstrap(base.correct, adapted.correct)
    base_score, adapted_score = base.score, adapted.score
    return {
        "base": base_score, "adapted": adapted_score, "delta": adapted_score - base_score,
        "ci_low": low, "ci_high": high, "n": len(base.ids), "dropped": high < 0, "metric": base.metric,
    }


def retained(rows: dict[str, dict[str, Any]]) -> float | None:
    """General ability retained: mean of adapted/base over benchmarks (those where base scored 0 say nothing)."""
    ratios = [row["adapted"] / row["base"] for row in rows.values() if row["base"] > 0]
    return float(np.mean(ratios)) if ratios else None


# --- per-item benchmark scores ----------------------------------------------------------------------------


@dataclass
class ItemScores:
    """Per-item correctness on one benchmark under its headline metric (1.0 right, 0.0 wrong)."""

    benchmark: str
    metric: str
    ids: list[str]
    correct: list[float]

    @property
    def score(self) -> float:
        return float(np.mean(self.correct))

    def to_json(self) -> dict[str, Any]:
        return {"benchmark": self.benchmark, "metric": self.metric, "ids": self.ids, "correct": self.correct}


def headline_metric(benchmark: str) -> str | None:
    """The metric a bundled YAML names; None for lm-eval's own tasks (then acc_norm when reported, else acc)."""
    import yaml

    path = TASKS_DIR / f"{benchmark}.yaml"
    if not path.exists():
        return None
    return (yaml.safe_load(path.read_text(encoding="utf-8")).get("metadata") or {}).get("headline_metric")


def item_scores(benchmark: str, samples: dict[str, list[dict[str, Any]]]) -> ItemScores:
    """Per-item vector from lm-eval's logged samples; a group's subtasks are concatenated in name order."""
    rows = [(task, sample) for task in sorted(samples) for sample in sorted(samples[task], key=lambda s: s["doc_id"])]
    if not rows:
        raise AdaptError(f"benchmark {benchmark!r} produced no items", hint="check that its data file is not empty")
    metric = headline_metric(benchmark) or ("acc_norm" if "acc_norm" in rows[0][1] else "acc")
    if metric not in rows[0][1]:
        raise AdaptError(f"benchmark {benchmark!r} reports no {metric!r} per item",
                         hint="forgetting checks need multiple-choice tasks (acc / acc_norm)")
    return ItemScores(benchmark, metric, [f"{task}:{sample['doc_id']}" for task, sample in rows],
                      [float(sample[metric]) for _, sample in rows])


# --- lm-eval plumbing -------------------------------------------------------------------------------------


def lm_eval_name(benchmark: str) -> str:
    return f"adaptlab_{benchmark}" if benchmark in bundled_benchmarks() else benchmark


def task_digest(benchmark: str) -> str:
    """Identity of what a benchmark measures: its YAML (with the shared template) and its data file."""
    from base.plan import file_digest

    if benchmark not in bundled_benchmarks():
        from importlib import metadata

        return f"lm-eval-{metadata.version('lm-eval')}"
    digest = hashlib.sha256()
    for path in (TASKS_DIR / TASK_TEMPLATE, TASKS_DIR / f"{benchmark}.yaml"):
        digest.update(path.read_bytes())
    digest.update((file_digest(benchmarks_dir() / f"{benchmark}.jsonl") or "").encode())
    return digest.hexdigest()[:16]


def ensure_benchmark_data(benchmarks: Sequence[str]) -> None:
    """Provision missing bundled benchmark files (`runners.bundled`); fail with a fix when that is not possible."""
    missing = [name for name in benchmarks if name in bundled_benchmarks() and not (benchmarks_dir() / f"{name}.jsonl").exists()]
    if not missing:
        return
    try:
        from runners.bundled import ensure_datasets

        ensure_datasets(missing)
    except AdaptError:
        raise
    except Exception as exc:  # noqa: BLE001 - any provisioning failure becomes one message with the fix
        raise AdaptError(f"benchmark data missing for {missing} and could not be provisioned: {exc}",
                         file=benchmarks_dir(), hint="run `adapt data ensure`") from None
    still = [name for name in missing if not (benchmarks_dir() / f"{name}.jsonl").exists()]
    if still:
        raise AdaptError(f"benchmark data missing for {still}", file=benchmarks_dir(), hint="run `adapt data ensure`")


@contextlib.contextmanager
def task_manager(benchmarks: Sequence[str]) -> Iterator[Any]:
    """A TaskManager over the shipped YAMLs resolved to absolute data paths in a temp include dir.

    lm-eval's built-in tasks are indexed (seconds) only when a benchmark is not one of ours.
    """
    from lm_eval.tasks import TaskManager

    bundled = bundled_benchmarks()
    unknown = [name for name in benchmarks if name not in bundled]
    with tempfile.TemporaryDirectory(prefix="adaptlab-tasks-") as folder:
        for path in TASKS_DIR.glob("*.yaml"):
            text = path.read_text(encoding="utf-8").replace(PLACEHOLDER, str(benchmarks_dir().resolve()))
            (Path(folder) / path.name).write_text(text, encoding="utf-8")
        manager = TaskManager(include_path=folder, include_defaults=bool(unknown))
        not_found = [name for name in unknown if name not in manager.all_tasks]
        if not_found:
            raise AdaptError(f"unknown benchmark(s) {not_found}", field="forgetting.benchmarks",
                             hint=f"bundled (offline): {bundled}; or any lm-eval task name when the hub is reachable")
        yield manager


@contextlib.contextmanager
def quiet_lm_eval() -> Iterator[None]:
    """lm-eval and datasets log and draw tqdm bars per call; our rich progress already says what runs."""
    import datasets

    logger = logging.getLogger("lm_eval")
    level, bars = logger.level, datasets.is_progress_bar_enabled()
    logger.setLevel(logging.ERROR)
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        logger.setLevel(level)
        if bars:
            datasets.enable_progress_bars()


def wrap_model(model: Any, tokenizer: Any) -> Any:
    """An lm-eval HFLM around an in-memory model (plain or peft), with its per-request tqdm bar off.

    In a multi-process run it is made data-parallel: HFLM does that itself only when it loads the model by name and
    sees more than one CUDA device (lm-eval 0.4.13, models/huggingface.py), never for a model object and never on
    CPU, where each process would score every item. The evaluator needs only `rank`, `world_size` and, on
    `accelerator`, `gather` and `wait_for_everyone` (plus `unwrap_model`): accelerate's own functions over the
    process group already up, so the same split works on gloo (CPU) and NCCL.
    """
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=BATCH_SIZE)
    loglikelihood = functools.partial(lm.loglikelihood, disable_tqdm=True)
    state = shards.processes()
    if state is None:
        lm.loglikelihood = loglikelihood
        return lm
    from types import SimpleNamespace

    from accelerate.utils import gather

    lm._rank, lm._world_size = state.process_index, state.num_processes
    lm.accelerator = SimpleNamespace(gather=gather, wait_for_everyone=state.wait_for_everyone,
                                     unwrap_model=lambda wrapped: wrapped)

    def reported(requests: list[Any]) -> list[Any]:
        shards.report(f"forgetting: {len(requests)} lm-eval requests")
        return loglikelihood(requests)

    lm.loglikelihood = reported
    return lm


def run_benchmark(lm: Any, benchmark: str, limit: int | None, manager: Any) -> ItemScores | None:
    """Score one benchmark with lm-eval (fixed seeds, zero-shot) and keep the per-item results (None on the
    processes other than 0 of a data-parallel run: lm-eval gathers the items on process 0)."""
    import lm_eval

    try:
        output = lm_eval.simple_evaluate(model=lm, tasks=[lm_eval_name(benchmark)], task_manager=manager,
                                         limit=limit, num_fewshot=0, log_samples=True, bootstrap_iters=0)
    except (FileNotFoundError, ConnectionError, OSError) as exc:
        raise AdaptError(f"benchmark {benchmark!r} could not load its data: {str(exc).splitlines()[0]}",
                         hint="lm-eval's own tasks need the hub; offline, use the bundled ones: "
                              f"{bundled_benchmarks()}") from None
    return item_scores(benchmark, output["samples"]) if output is not None else None


# --- perplexity -------------------------------------------------------------------------------------------


def load_general_text(limit: int | None) -> list[str]:
    path = general_text_path()
    if not path.exists():
        raise AdaptError("general text sample for the perplexity check is missing", file=path,
                         hint="run `adapt data ensure`, or set forgetting.perplexity=false")
    texts = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                texts.append(str(json.loads(line)["text"]))
            except (json.JSONDecodeError, KeyError, TypeError):
                raise AdaptError("expected a JSON object with a `text` field", file=path, line=number, field="text") from None
            if limit is not None and len(texts) >= limit:
                break
    if not texts:
        raise AdaptError("general text sample is empty", file=path, hint="run `adapt data ensure`")
    return texts


def perplexity(model: Any, tokenizer: Any, texts: Sequence[str], max_tokens: int = PERPLEXITY_MAX_TOKENS) -> float:
    """Token-weighted perplexity: exp(total NLL / total predicted tokens), each text cut to max_tokens, no grad."""
    import torch

    device = next(model.parameters()).device

    def summed(mine: list[int], _progress: Any) -> list[tuple[float, int]]:
        """(summed NLL, predicted tokens) of each text; texts under two tokens predict nothing."""
        sums = []
        with torch.no_grad():
            for index in mine:
                ids = tokenizer(texts[index], return_tensors="pt", truncation=True, max_length=max_tokens)["input_ids"].to(device)
                if ids.shape[1] < 2:
                    sums.append((0.0, 0))
                    continue
                logits = model(input_ids=ids).logits[:, :-1].float()
                nll = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1),
                                                        reduction="sum")
                sums.append((float(nll), ids.shape[1] - 1))
        return sums

    per_text = shards.map_shards(summed, len(texts))  # each process its share of the texts
    total_nll, total_tokens = sum(nll for nll, _ in per_text), sum(tokens for _, tokens in per_text)
    if total_tokens == 0:
        raise AdaptError("general text sample has no text long enough to score", file=general_text_path())
    return float(np.exp(total_nll / total_tokens))


# --- the check --------------------------------------------------------------------------------------------


class BaseCache:
    """Base-model results on disk, one JSON per (model digest, benchmark, limit, task digest)."""

    def __init__(self, folder: Path, model_digest: str) -> None:
        self.folder = Path(folder)
        self.model_digest = model_digest

    def path(self, kind: str, limit: int | None, digest: str) -> Path:
        return self.folder / f"{self.model_digest}__{kind}__limit-{limit or 'all'}__{digest}.json"

    def get(self, kind: str, limit: int | None, digest: str) -> dict[str, Any] | None:
        path = self.path(kind, limit, digest)
        if not path.exists():
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            return None  # a damaged cache entry is recomputed, never trusted

    def put(self, kind: str, limit: int | None, digest: str, data: dict[str, Any]) -> None:
        from base.io import write_json_atomic

        write_json_atomic(self.path(kind, limit, digest), data)


class Models:
    """Base and adapted models, loaded only when needed (a cached base is never loaded unless an adapter needs it)."""

    def __init__(self, base_path: str, adapted: str | Path | Any, device: str, tokenizer: Any) -> None:
        self.base_path, self.adapted_source, self.device, self.tokenizer = base_path, adapted, device, tokenizer
        self._base: Any = None
        self._adapted: Any = None

    def base(self) -> Any:
        """The base model; a peft adapter is later injected into this same object, so base runs come first."""
        from runners.models import load_model

        if self._base is None:
            self._base, _ = load_model(self.base_path, self.device)
            self._base.eval()
        return self._base

    def adapted(self) -> Any:
        from runners.models import load_model

        if self._adapted is not None:
            return self._adapted
        source = self.adapted_source
        if not isinstance(source, (str, Path)):
            self._adapted = source
        elif (Path(source) / "adapter_config.json").exists():
            from peft import PeftModel

            self._adapted = PeftModel.from_pretrained(self.base(), str(source))
            self._base = None  # wrapped in place: it is no longer the base model
        else:
            self._adapted, _ = load_model(str(source), self.device)
        return self._adapted


def check_adapted_source(adapted: str | Path | Any) -> None:
    """A path must be a peft adapter folder or a full HF model folder; say so before loading anything."""
    if not isinstance(adapted, (str, Path)):
        return
    folder = Path(adapted)
    if not folder.exists():
        raise AdaptError("adapted model not found", file=folder, hint="a peft adapter folder or a full model folder")
    if not ((folder / "adapter_config.json").exists() or (folder / "config.json").exists()):
        raise AdaptError("not a peft adapter folder (adapter_config.json) nor a model folder (config.json)", file=folder)


def check_forgetting(base_model: str, adapted: str | Path | Any, settings: ForgettingSettings, device: str,
                     cache_dir: Path, tokenizer: Any = None) -> dict[str, Any] | None:
    """Base vs adapted on every benchmark of `settings` (same items, same seeds) plus the perplexity proxy.

    `adapted`: a peft adapter folder, a full model folder, or an in-memory (peft) model.
    Progress goes through base.progress (compare's display, or the one `adapt forget` installs).
    Returns the RunResult.forgetting dict: {"benchmarks": {name: {base, adapted, delta, ci_low, ci_high, n,
    dropped, metric}}, "retained", "perplexity": {base, adapted, ratio} | None, "limit"}; None on the processes
    other than 0 of a multi-process run, which score their share and leave the rest to process 0.
    """
    from runners.models import load_tokenizer, model_digest, resolve_model_path

    check_adapted_source(adapted)
    ensure_benchmark_data(settings.benchmarks)
    texts = load_general_text(settings.limit) if settings.perplexity else None
    base_path = resolve_model_path(base_model)
    tokenizer = tokenizer if tokenizer is not None else load_tokenizer(base_model)
    cache = BaseCache(cache_dir, model_digest(base_path))
    models = Models(base_path, adapted, device, tokenizer)
    main_process = shards.is_main_process()
    steps = 2 * len(settings.benchmarks) + (2 if texts else 0)
    with bar("forgetting checks", steps) as advance, task_manager(settings.benchmarks) as manager, quiet_lm_eval():
        base_scores: dict[str, ItemScores] = {}
        for name in settings.benchmarks:  # every base run before the adapter is injected into the base model
            advance(0, description=f"forgetting: {name} (base)")
            digest = task_digest(name)
            cached = cache.get(name, settings.limit, digest)
            if cached is None:  # every process reads the same cache: an entry is written only after all scored it
                scores = run_benchmark(wrap_model(models.base(), tokenizer), name, settings.limit, manager)
                if scores is not None:
                    cache.put(name, settings.limit, digest, scores.to_json())
            else:
                scores = ItemScores(**cached)
            base_scores[name] = scores
            advance()
        base_ppl = None
        if texts:
            advance(0, description="forgetting: perplexity (base)")
            ppl_digest = hashlib.sha256("\n".join(texts).encode() + str(PERPLEXITY_MAX_TOKENS).encode()).hexdigest()[:16]
            cached = cache.get("perplexity", settings.limit, ppl_digest)
            if cached is None:
                cached = {"perplexity": perplexity(models.base(), tokenizer, texts)}
                if main_process:
                    cache.put("perplexity", settings.limit, ppl_digest, cached)
            base_ppl = cached["perplexity"]
            advance()
        rows = {}
        with inference_mode(models.adapted()) as adapted_model:
            lm = wrap_model(adapted_model, tokenizer)
            for name in settings.benchmarks:
                advance(0, description=f"forgetting: {name} (adapted)")
                scores = run_benchmark(lm, name, settings.limit, manager)
                if scores is not None:
                    rows[name] = compare_items(base_scores[name], scores)
                advance()
            ppl = None
            if texts:
                advance(0, description="forgetting: perplexity (adapted)")
                adapted_ppl = perplexity(adapted_model, tokenizer, texts)
                ppl = {"base": base_ppl, "adapted": adapted_ppl, "ratio": adapted_ppl / base_ppl}
                advance()
    if not main_process:
        return None
    return {"benchmarks": rows, "retained": retained(rows), "perplexity": ppl, "limit": settings.limit}


# --- `adapt forget` ---------------------------------------------------------------------------------------


def forget_command(adapted: Path, base: str, benchmarks: list[str], limit: int | None, output: Path | None) -> dict[str, Any]:
    """Forgetting alone, outside a compare: prints the table, optionally writes the JSON."""
    from pydantic import ValidationError

    from base.plan import resolve_device
    from base.io import write_json_atomic

    try:
        settings = ForgettingSettings(benchmarks=benchmarks or ForgettingSettings().benchmarks, limit=limit)
    except ValidationError as exc:
        error = exc.errors()[0]
        raise AdaptError(error["msg"], field=".".join(str(part) for part in error["loc"])) from None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  transient=True) as progress, showing(progress):
        result = check_forgetting(base, adapted, settings, device=resolve_device("auto"), cache_dir=default_cache_dir())
    print_table(result, title=f"Forgetting: {adapted} vs {base}")
    if output is not None:
        write_json_atomic(Path(output), result)
    return result


def print_table(result: dict[str, Any], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in ("benchmark", "metric", "n", "base", "adapted", "delta", "95% CI", "dropped"):
        table.add_column(column, justify="left" if column in ("benchmark", "metric") else "right")
    for name, row in result["benchmarks"].items():
        colour = "red" if row["dropped"] else ""
        table.add_row(name, row["metric"], str(row["n"]), f"{row['base']:.3f}", f"{row['adapted']:.3f}",
                      f"[{colour}]{row['delta']:+.3f}[/]" if colour else f"{row['delta']:+.3f}",
                      f"[{row['ci_low']:+.3f}, {row['ci_high']:+.3f}]", "[red]yes[/]" if row["dropped"] else "no")
    console = Console()
    console.print(table)
    kept = "n/a (the base scored 0 everywhere)" if result["retained"] is None else f"{result['retained']:.1%}"
    console.print(f"general ability retained: {kept} (mean adapted/base)")
    if result["perplexity"]:
        ppl = result["perplexity"]
        console.print(f"general-text perplexity: base {ppl['base']:.2f} → adapted {ppl['adapted']:.2f} (×{ppl['ratio']:.3f})")
    console.print(f"items per benchmark: {result['limit'] or 'all'}")

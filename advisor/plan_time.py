"""How long a plan will take, run by run, before it starts: `adapt compare` prints it, `--dry-run` shows it.

Training time is advisor.estimate's model (the figure `advise` shows), over the plan's GPUs when its launch section
starts several. Scoring and forgetting checks are forward passes at the device's inference throughput, plus fixed
costs per batch, per generated token and per run. The CPU
figures were read off one `make demo` on the idle 2-core build machine (compare: 9 min 28 s for 8 runs): treat the
total as a "minutes or hours" guide (the goal is within 2x).
Token counts come from the plan's own data files at CHARS_PER_TOKEN (no tokenizer is loaded for a dry run).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from advisor import estimate as est
from advisor.engine import DEFAULT_GPU
from advisor.hardware import CPU_INFERENCE_MFU, GPUS, Device, local_cpu
from base import registry
from base.data import load_corpus, load_examples, load_preferences
from base.plan import Plan, RunSpec

CHARS_PER_TOKEN = 4.0  # English text in a BPE vocabulary
PLAIN_TEMPLATE_TOKENS = 8  # "Review: ...\nSentiment:" around an example (the chat template: est.TEMPLATE_TOKENS)
SCORING_BATCH = 8  # runners.scoring's batch
FORWARD_OVERHEAD_S = 0.05  # per batched forward on CPU: tokenising, padding, Python between kernels (prior)
DECODE_STEP_S = 0.05  # per generated token of a batch at batch 1-8 on CPU (measured p50: 0.62 s for ~12 tokens)
LATENCY_QUERIES = 12  # runners.scoring.LATENCY_SAMPLE: queries timed one at a time
FORMAT_QUERIES = 50  # runners.scoring.FORMAT_SAMPLE: rank-scored queries also generated freely
RUN_OVERHEAD_S = 6.0  # per run: its own process's imports, loading the model, saving results (demo: 4-5 s)
FORGETTING_TOKENS_PER_ITEM = 100  # lm-eval loglikelihood requests of one item (arc, piqa, winogrande: 2-4 short choices)
FORGETTING_BENCHMARK_S = 2.0  # per benchmark and model: lm-eval builds the task and its requests
PERPLEXITY_TOKENS_PER_TEXT = 256  # runners.forgetting.PERPLEXITY_MAX_TOKENS; `limit` texts per model
# (demo: 3 benchmarks x 25 items + 25 texts took 23-24 s per adapted model)


@dataclass
class RunTime:
    """Seconds one run is expected to take, by phase."""

    run_id: str
    overhead_s: float
    train_s: float
    scoring_s: float
    forgetting_s: float

    @property
    def total_s(self) -> float:
        return self.overhead_s + self.train_s + self.scoring_s + self.forgetting_s


def device_for(spec: RunSpec) -> Device:
    """The run's device as the estimates know it: this machine's CPU, or the default GPU row for CUDA."""
    return local_cpu() if spec.device == "cpu" else GPUS[DEFAULT_GPU]


@lru_cache(maxsize=32)
def _examples_tokens(path: Path, limit: int | None) -> tuple[int, float, float]:
    """(count, mean prompt tokens, mean target tokens) of the first `limit` examples of a data file."""
    examples = load_examples(path, limit=limit)
    if not examples:
        return 0, 0.0, 0.0
    prompt = sum(len(e.prompt) for e in examples) / len(examples) / CHARS_PER_TOKEN
    target = sum(len(e.target) for e in examples) / len(examples) / CHARS_PER_TOKEN
    return len(examples), prompt, target


@lru_cache(maxsize=8)
def _preference_tokens(path: Path, limit: int | None) -> tuple[int, float, float]:
    """(pairs, mean prompt tokens, mean answer tokens) of the first `limit` preference pairs."""
    pairs = load_preferences(path, limit=limit)
    prompt = sum(len(p.prompt) for p in pairs) / len(pairs) / CHARS_PER_TOKEN
    answer = sum(len(p.chosen) + len(p.rejected) for p in pairs) / 2 / len(pairs) / CHARS_PER_TOKEN
    return len(pairs), prompt, answer


@lru_cache(maxsize=8)
def _corpus_tokens(path: Path) -> float:
    return sum(len(d.text) for d in load_corpus(path)) / CHARS_PER_TOKEN


def forward_seconds(tokens: float, shape: est.ModelShape, device: Device) -> float:
    """Forward passes over `tokens` tokens (2N FLOPs a token) at the device's throughput."""
    mfu = est.gpu_mfu(device, SCORING_BATCH * 64) if device.is_gpu else CPU_INFERENCE_MFU
    return tokens * 2 * shape.compute_params / (device.tflops * 1e12 * mfu)


def template_tokens(spec: RunSpec) -> int:
    return est.TEMPLATE_TOKENS["chat"] if spec.task.prompt_format == "chat" else PLAIN_TEMPLATE_TOKENS


def train_seconds(spec: RunSpec, shape: est.ModelShape, device: Device) -> float:
    settings, entry = spec.strategy, registry.get(spec.strategy.strategy)
    if entry.estimate == "features":  # one forward pass over the train inputs
        count, prompt, _ = _examples_tokens(spec.task.train, spec.task.train_limit)
        return est.feature_seconds(shape, count * prompt, device)
    if not entry.trains:
        return 0.0
    gpus = spec.launch.num_processes if device.is_gpu and spec.launch.multi_process else 1  # CPU processes share cores
    setup = est.replace(est.setup_for(settings.model_dump(), host=not device.is_gpu, precision="bf16" if device.is_gpu else "fp32"),
                        processes=gpus, distributed=spec.launch.distributed if gpus > 1 else "ddp")
    if "corpus" in entry.needs:  # full rows of max_length
        tokens = _corpus_tokens(spec.task.corpus) * settings.epochs
        row = settings.max_length
    else:  # a preference pair is two rows: the prompt with the chosen answer, the prompt with the rejected one
        pairs = "preferences" in entry.needs
        count, prompt, target = (_preference_tokens if pairs else _examples_tokens)(
            spec.task.preferences if pairs else spec.task.train, spec.task.train_limit)
        row = min(prompt + target + template_tokens(spec), settings.max_length)
        tokens = count * (2 if pairs else 1) * (1 - settings.eval_fraction) * settings.epochs * row
        setup = est.replace(setup, example_tokens=row)
    step_examples = settings.batch_size * settings.grad_accum
    if settings.max_steps is not None:
        tokens = min(tokens, settings.max_steps * step_examples * row)
    return est.parallel_train_seconds(shape, setup, tokens, device)


def scoring_seconds(spec: RunSpec, shape: est.ModelShape, device: Device) -> float:
    """Every eval item scored (ranked in one forward, or generated token by token), plus the latency sample."""
    count, prompt, _ = _examples_tokens(spec.task.eval, spec.task.eval_limit)
    settings = spec.strategy
    prompt_tokens = prompt + template_tokens(spec)
    orders = 1
    if registry.get(settings.strategy).estimate == "demos":
        prompt_tokens *= 1 + settings.k
        orders = min(settings.orderings, settings.k) if spec.task.scoring == "rank" else 1
    if registry.get(settings.strategy).estimate == "passages":
        prompt_tokens += settings.top_k * settings.chunk_size * 1.33
    passes = (2 if getattr(settings, "calibrate", False) else 1) * orders
    batches = math.ceil(count / SCORING_BATCH) * passes
    seconds = forward_seconds(count * passes * prompt_tokens, shape, device) + batches * FORWARD_OVERHEAD_S
    if spec.task.scoring == "generate":
        seconds += batches * settings.max_new_tokens * DECODE_STEP_S
    else:  # format compliance: a sample generated freely, a label's length (+2 tokens)
        sample = min(FORMAT_QUERIES, count)
        seconds += forward_seconds(sample * prompt_tokens, shape, device) \
            + math.ceil(sample / SCORING_BATCH) * min(settings.max_new_tokens, 4) * DECODE_STEP_S
    latency_sample = min(LATENCY_QUERIES, count)
    per_query = orders * forward_seconds(prompt_tokens, shape, device) + FORWARD_OVERHEAD_S * orders
    if spec.task.scoring == "generate":
        per_query += settings.max_new_tokens * DECODE_STEP_S
    return seconds + latency_sample * per_query


def forgetting_seconds(spec: RunSpec, shape: est.ModelShape, device: Device, models: int) -> float:
    """lm-eval on `models` models (the adapted one, plus the base the first time it is needed)."""
    settings = spec.forgetting
    if not (settings.enabled and registry.get(spec.strategy.strategy).changes_weights):
        return 0.0
    items = (settings.limit or 1000) * len(settings.benchmarks)
    tokens = items * FORGETTING_TOKENS_PER_ITEM + (PERPLEXITY_TOKENS_PER_TEXT * (settings.limit or 100) if settings.perplexity else 0)
    per_model = forward_seconds(tokens, shape, device) + math.ceil(items / SCORING_BATCH) * FORWARD_OVERHEAD_S \
        + len(settings.benchmarks) * FORGETTING_BENCHMARK_S
    return per_model * models


def plan_times(plan: Plan, specs: list[RunSpec]) -> list[RunTime]:
    """One RunTime per spec, in order; the base model's forgetting baseline is counted once (compare caches it)."""
    shape = est.model_shape(plan.model)
    times, base_counted = [], False
    for spec in specs:
        device = device_for(spec)
        forgetting = forgetting_seconds(spec, shape, device, models=1 if base_counted else 2)
        base_counted = base_counted or forgetting > 0
        times.append(RunTime(spec.run_id, RUN_OVERHEAD_S, train_seconds(spec, shape, device),
                             scoring_seconds(spec, shape, device), forgetting))
    return times


def plan_seconds(plan: Plan, specs: list[RunSpec]) -> list[float]:
    """Total expected seconds per run (what `compare` prints)."""
    return [time.total_s for time in plan_times(plan, specs)]

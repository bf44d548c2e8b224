"""The decision engine: answers -> ranked strategies, the rules that fired, what was ruled out and why,
estimates per strategy, and a runnable `compare` plan for the top candidates. `rerank` closes the loop with
what `compare` measured. Pure functions over data; no torch.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

from advisor import estimate as est
from advisor.hardware import GPUS, Device, local_cpu
from advisor.questions import QUESTIONS, Answers
from advisor.rules import OUT, RULES, contradictions, prior, strategies
from base import registry
from base.judge import candidates as measured, judge
from base.plan import DEFAULT_PROMPT_FORMAT, LoraSettings

DEFAULT_GPU = "L4"  # what time and $ are shown on when the GPU is unknown
TOKENS_BY_TYPE = {"classification": 60, "qa": 120, "multiple_choice": 100}
OUTPUT_TOKENS_BY_TYPE = {"classification": 4, "qa": 24, "multiple_choice": 4}
PLAN_CANDIDATES = 4  # strategies the plan compares, besides the zero-shot baseline
PLAN_BATCH = 8  # micro-batch the plan writes (and the estimates assume)
HELD_OUT = 0.1  # share of the train examples the training loop holds out for its eval loss (TrainSettings.eval_fraction)
EVAL_ITEMS = (50, 200, 500)  # eval items a plan scores: fewest, without a budget, most (more narrows the CI little)
EVAL_BUDGET_SHARE = 0.25  # of the time budget, what scoring every strategy's eval items may take
SCORING_OVERHEAD_S = 0.05  # per scored item on a CPU: batching, tokenising, Python between kernels (prior)
CPU_FORGETTING = {"benchmarks": ["arc_easy", "winogrande", "piqa"], "limit": 25}  # what a CPU finishes in minutes
GPU_FORGETTING = {"limit": 50}  # every benchmark
MEMORY_HEADROOM = 0.95  # share of a device's memory an estimate may fill and still count as fitting
# The shipped accelerate config (configs/launch/) a plan names for a mode, and the process count it was written for
# (None: any, the plan's num_processes overriding it). The FSDP file holds what the sharded estimate assumes (full
# shard, a decoder layer a unit, backward prefetch) and is what runs for `distributed: fsdp` anyway.
SHIPPED_LAUNCH = {"ddp": ("8gpu-ddp", 8), "fsdp": ("8gpu-fsdp", None)}


@dataclass
class FiredRule:
    id: str
    because: str
    effect: dict[str, str]  # strategy -> "+3", "-2" or "out"


@dataclass
class Recommendation:
    answers: Answers
    ranking: list[tuple[str, float]]  # viable strategies, best first
    fired: list[FiredRule]
    ruled_out: dict[str, list[str]]  # strategy -> reasons
    warnings: list[str]
    estimates: dict[str, est.StrategyEstimate]
    device: str  # what time and $ are estimated on
    plan_yaml: str
    launch: dict = field(default_factory=dict)  # the plan's launch section: empty for one process
    measured: list[dict] = field(default_factory=list)  # filled by rerank
    overturned: list[str] = field(default_factory=list)

    @property
    def top(self) -> str:
        return self.ranking[0][0]

    def to_dict(self) -> dict:
        return {
            "top": self.top,
            "ranking": [{"strategy": s, "score": score} for s, score in self.ranking],
            "fired": [f.__dict__ for f in self.fired],
            "ruled_out": self.ruled_out,
            "warnings": self.warnings,
            "estimates": {s: e.to_dict() for s, e in self.estimates.items()},
            "estimated_on": self.device,
            "launch": self.launch,
            "measured": self.measured,
            "overturned": self.overturned,
            "answers": self.answers.answered(),
        }


def score(answers: Answers) -> tuple[dict[str, float], list[FiredRule], dict[str, list[str]]]:
    """Apply every rule in table order: scores add up, OUT is final."""
    scores = prior()
    fired, ruled_out = [], {}
    for rule in RULES:
        if not rule.when(answers):
            continue
        effects = rule.effect
        fired.append(FiredRule(rule.id, rule.because, {s: (OUT if v == OUT else f"{v:+g}") for s, v in effects.items()}))
        for strategy, effect in effects.items():
            if effect == OUT:
                ruled_out.setdefault(strategy, []).append(f"{rule.id}: {rule.because}")
            else:
                scores[strategy] += effect
    return scores, fired, ruled_out


def training_device(answers: Answers) -> Device:
    """One GPU of the machine (memory and throughput are one GPU's: each of `gpu_count` processes is sized on its
    own), priced as all of them; or this machine's CPU."""
    if answers.cpu_only:
        return local_cpu()
    gpu = GPUS[answers.gpu or DEFAULT_GPU]
    if answers.gpu_hour_usd is not None:
        gpu = replace(gpu, usd_per_hour=answers.gpu_hour_usd)
    return replace(gpu, name=f"{answers.gpu_count}x {gpu.name}", usd_per_hour=gpu.usd_per_hour * answers.gpu_count)


def processes(answers: Answers, device: Device) -> int:
    """Training processes a run of the plan starts: one per GPU, one on a CPU."""
    return answers.gpu_count if device.is_gpu else 1


def fits(estimate: est.StrategyEstimate, device: Device) -> bool:
    return estimate.peak_memory_gib <= device.memory_gib * MEMORY_HEADROOM


def example_tokens(answers: Answers) -> int:
    return answers.avg_example_tokens or TOKENS_BY_TYPE.get(answers.task_type or "", 80)


def epochs_for(answers: Answers) -> float:
    """Small data sets need several passes; large ones one."""
    return 3.0 if 0 < (answers.labelled_examples or 0) < 500 else 1.0


def pair_tokens(answers: Answers) -> int:
    """Tokens of one training example as the plan's loop sees it: text and answer inside the task type's prompt format."""
    prompt_format = DEFAULT_PROMPT_FORMAT.get(answers.task_type or "", "chat")
    return example_tokens(answers) + est.TEMPLATE_TOKENS[prompt_format]


def max_length_for(answers: Answers) -> int:
    """Row length of the plan: the smallest power of two from 256 that holds the longest example whole (the mean
    example's spread, est.longest_example), within the context window."""
    longest = est.longest_example(pair_tokens(answers))
    return min(max(256, 2 ** math.ceil(math.log2(longest))), answers.context_window or 4096)


def workload(answers: Answers) -> est.Workload:
    """Tokens as the plan's training loop sees them: each example inside its prompt format, the held-out share not
    trained on but scored once an epoch."""
    tokens = example_tokens(answers)
    per_example = pair_tokens(answers)
    examples, epochs = answers.labelled_examples or 0, epochs_for(answers)
    return est.Workload(
        train_tokens=examples * (1 - HELD_OUT) * per_example * epochs,
        held_out_tokens=examples * HELD_OUT * per_example * epochs, epochs=epochs,
        corpus_tokens=answers.corpus_tokens or 0, query_tokens=per_example,
        output_tokens=OUTPUT_TOKENS_BY_TYPE.get(answers.task_type or "", 8), example_tokens=tokens,
        few_shot_k=few_shot_k(answers),
        usd_per_1m_input_tokens=answers.usd_per_1m_input_tokens if answers.usd_per_1m_input_tokens is not None else 0.10,
    )


def few_shot_k(answers: Answers) -> int:
    return 2 if (answers.context_window or 4096) < 2048 else 4


def estimate_all(answers: Answers, shape: est.ModelShape, device: Device, modes: tuple[str, ...] = ("ddp", "fsdp")
                 ) -> tuple[dict[str, est.StrategyEstimate], dict[str, est.TrainSetup]]:
    """Estimates per strategy, and the setup each was estimated with: gradient checkpointing, a smaller micro-batch
    (with accumulation) and on several GPUs sharding (one of `modes`) where they make a strategy fit (fitted_estimate)."""
    load, estimates, setups = workload(answers), {}, {}
    trained_examples = math.floor((answers.labelled_examples or 0) * (1 - HELD_OUT))
    # a micro-batch is PLAN_BATCH examples (as Trainer counts them; fewer when there are fewer), packed into rows
    base = est.TrainSetup(seq_len=max_length_for(answers), batch=max(1, min(PLAN_BATCH, trained_examples)),
                          example_tokens=load.query_tokens, precision="bf16" if device.is_gpu else "fp32",
                          host=not device.is_gpu, processes=processes(answers, device))
    candidates = list(GPUS.values()) + ([] if device.is_gpu else [device])
    for strategy in strategies():
        estimates[strategy], setups[strategy] = fitted_estimate(strategy, shape, base, load, device, candidates, modes)
    return estimates, setups


def fitted_estimate(strategy: str, shape: est.ModelShape, setup: est.TrainSetup, load: est.Workload, device: Device,
                    candidates: list[Device], modes: tuple[str, ...]) -> tuple[est.StrategyEstimate, est.TrainSetup]:
    """The first way to train `strategy` whose peak fits one device, else the one with the smallest peak, with the
    setup it takes. Each of `modes` as is, then each with gradient checkpointing, then checkpointed with the micro-batch
    halved and the gradients accumulated over the halves (the same examples a step) down to one example a process;
    sharding (fsdp) only where the strategy can be sharded, after DDP, so on several GPUs adapters take DDP and
    whole-model training shards only when a replica would not fit."""
    if not est.trains(strategy):
        return est.estimate_strategy(strategy, shape, setup, load, device, candidates), setup
    usable = [mode for mode in modes if mode not in est.SHARDED or est.shardable(strategy)] if setup.processes > 1 else []
    usable = usable or ["ddp"]
    micro = [setup.batch >> halved for halved in range(1, setup.batch.bit_length()) if setup.batch >> halved >= setup.processes]
    ways = [replace(setup, distributed=mode, grad_checkpointing=checkpointed) for checkpointed in (False, True) for mode in usable]
    ways += [replace(setup, distributed=mode, grad_checkpointing=True, batch=batch, grad_accum=setup.batch // batch)
             for batch in micro for mode in usable]
    tried = [(est.estimate_strategy(strategy, shape, way, load, device, candidates), way) for way in ways]
    return next((way for way in tried if fits(way[0], device)), min(tried, key=lambda way: way[0].peak_memory_gib))


def recommend(answers: Answers, plan_dir: Path = Path(".")) -> Recommendation:
    """`plan_dir`: the folder the plan will be written to, relative to where the user runs `advise` (which is what
    the paths in the answers are relative to); the plan's paths are written relative to it, as `compare` reads them."""
    scores, fired, ruled_out = score(answers)
    warnings = contradictions(answers)
    shape = est.model_shape(answers.model)
    device = training_device(answers)
    estimates, setups = estimate_all(answers, shape, device)
    if answers.gpu is not None:
        rule_out_unfit(estimates, device, ruled_out, fired)

    def viable() -> list[tuple[str, float]]:
        return sorted(((s, round(scores[s], 2)) for s in strategies() if s not in ruled_out), key=lambda item: -item[1])

    mode, excluded = launch_mode(viable(), estimates)
    for strategy, because in excluded.items():
        rule_out(strategy, "launch", because, ruled_out, fired)
    if mode in est.SHARDED:  # the strategies that fitted a replica run sharded too: estimate them as they will run
        sharded, sharded_setups = estimate_all(answers, shape, device, modes=(mode,))
        for strategy, _ in viable():
            if est.trains(strategy):
                estimates[strategy], setups[strategy] = sharded[strategy], sharded_setups[strategy]
        if answers.gpu is not None:
            rule_out_unfit(estimates, device, ruled_out, fired)
    ranking = viable()
    warnings += _unanswered(answers) + _budget_warnings(budget_hours(answers, device), estimates, ranking)
    launch = launch_section(answers, device, mode, plan_strategies(ranking))
    plan = build_plan(answers, ranking, estimates, setups, device, warnings, plan_dir, launch)
    return Recommendation(answers, ranking, fired, ruled_out, warnings, estimates,
                          device.name + ("" if answers.gpu else " (assumed: answer `gpu`)"), plan, launch)


def rule_out(strategy: str, rule_id: str, because: str, ruled_out: dict[str, list[str]], fired: list[FiredRule]) -> None:
    ruled_out[strategy] = [f"{rule_id}: {because}"]
    fired.append(FiredRule(rule_id, because, {strategy: OUT}))


def rule_out_unfit(estimates: dict[str, est.StrategyEstimate], device: Device, ruled_out: dict[str, list[str]],
                   fired: list[FiredRule]) -> None:
    """hardware_fit: training that does not fit one device even checkpointed (and, on several GPUs, sharded)."""
    for strategy, estimate in estimates.items():
        if strategy in ruled_out or not est.trains(strategy) or fits(estimate, device):
            continue
        if estimate.processes > 1:
            because = (f"needs ~{estimate.peak_memory_gib:.1f} GiB per GPU to train ({estimate.distributed} over "
                       f"{estimate.processes} GPUs), one {device.name.split('x ', 1)[-1]} has {device.memory_gib:g} GiB")
        else:
            because = f"needs ~{estimate.peak_memory_gib:.1f} GiB to train, {device.name} has {device.memory_gib:g} GiB"
        rule_out(strategy, "hardware_fit", because, ruled_out, fired)


def launch_mode(ranking: list[tuple[str, float]], estimates: dict[str, est.StrategyEstimate]) -> tuple[str, dict[str, str]]:
    """The plan's one launch mode (its `launch:` section holds for every run) and the strategies it rules out, why.

    DDP, unless a viable strategy fits its GPUs only sharded (full fine-tuning or CPT of a model whose replica does
    not fit). Adapters cannot be sharded (est.SHARDABLE_KINDS), so when both are viable the mode that keeps more of
    the plan's candidates runs (on a tie, the mode of the better-ranked one): a comparison of one strategy is no
    comparison. What the mode excludes can run in a plan of its own with the other mode."""
    trained = [s for s, _ in ranking if est.trains(s)]
    needs_sharding = [s for s in trained if estimates[s].distributed in est.SHARDED]
    unshardable = [s for s in trained if not est.shardable(s)]
    if not needs_sharding:
        return "ddp", {}
    candidates = trained[:PLAN_CANDIDATES]
    lost_under_ddp = [s for s in candidates if s in needs_sharding]
    lost_under_fsdp = [s for s in candidates if s in unshardable]
    sharded_first = not unshardable or trained.index(needs_sharding[0]) < trained.index(unshardable[0])
    if len(lost_under_fsdp) < len(lost_under_ddp) or (len(lost_under_fsdp) == len(lost_under_ddp) and sharded_first):
        return "fsdp", {s: (f"cannot be sharded, and the plan shards with fsdp for {', '.join(lost_under_ddp or needs_sharding[:1])}, "
                            "whose replica does not fit one GPU: run it in a plan with launch: {distributed: ddp}")
                        for s in unshardable}
    return "ddp", {s: (f"fits {estimates[s].processes} GPUs only sharded ({estimates[s].peak_memory_gib:.1f} GiB per "
                       f"GPU under {estimates[s].distributed}), and the plan runs ddp for {', '.join(lost_under_fsdp or unshardable[:1])}, "
                       "which cannot be sharded: run it in a plan with launch: {distributed: fsdp}")
                   for s in needs_sharding}


def launch_section(answers: Answers, device: Device, mode: str, chosen: list[str]) -> dict:
    """The plan's `launch:` section: one process per GPU for training runs, bf16 autocast, the shipped accelerate
    config for the mode where there is one; none for one process (a CPU, one GPU) or a plan that trains nothing."""
    count = processes(answers, device)
    if count == 1 or not any(est.trains(s) for s in chosen):
        return {}
    section = {"num_processes": count, "distributed": mode, "mixed_precision": "bf16"}
    config, written_for = SHIPPED_LAUNCH[mode]
    if written_for in (None, count):
        section["config_file"] = config
    return section


def _unanswered(answers: Answers) -> list[str]:
    missing = [q.key for q in QUESTIONS if q.ask_if(answers) and getattr(answers, q.key) is None]
    if len(missing) > len(QUESTIONS) // 2:
        return [f"{len(missing)} questions unanswered ({', '.join(missing[:6])}...): the ranking leans on priors."]
    return []


def budget_hours(answers: Answers, device: Device) -> float | None:
    """The tighter of the time budget and what the $ budget buys on this device."""
    limits = [answers.budget_hours] if answers.budget_hours is not None else []
    if answers.budget_usd is not None and device.usd_per_hour > 0:
        limits.append(answers.budget_usd / device.usd_per_hour)
    return min(limits) if limits else None


def _budget_warnings(budget: float | None, estimates: dict, ranking: list) -> list[str]:
    top = ranking[0][0]
    if budget is None or estimates[top].train_hours <= budget:
        return []
    return [f"{top} is estimated at {estimates[top].train_hours:.2g} h, over the {budget:.2g} h budget: "
            "the plan caps its training steps."]


# --- the plan --------------------------------------------------------------------------------------------


def plan_strategies(ranking: list[tuple[str, float]]) -> list[str]:
    """The zero-shot baseline plus the top candidates with a positive score; combinations run as their parts
    (compare has no combination runner)."""
    chosen = ["zero_shot"]
    for strategy, points in ranking:
        if points <= 0 and len(chosen) > 1:
            break
        if len([s for s in chosen if s != "zero_shot"]) >= PLAN_CANDIDATES:
            break
        for part in strategy.split("+"):
            if part not in chosen:
                chosen.append(part)
    return chosen


def strategy_settings(strategy: str, answers: Answers, estimate: est.StrategyEstimate, setup: est.TrainSetup,
                      budget: float | None) -> dict:
    """Sensible settings per strategy, sized from the answers (rank from data size, steps from the budget in hours);
    what is sized follows the strategy's estimate kind, so a registered strategy gets the settings of its kind. Row
    length, micro-batch, accumulation and checkpointing are the `setup` the estimate was made with."""
    n_examples = answers.labelled_examples or 0
    entry = registry.get(strategy)
    if entry.estimate == "demos":
        return {"strategy": strategy, "k": few_shot_k(answers)}
    if entry.estimate == "passages":
        return {"strategy": strategy, "top_k": 2 if (answers.context_window or 4096) < 2048 else 3}
    if not entry.trains:
        return {"strategy": strategy}
    settings: dict = {"strategy": strategy, "epochs": epochs_for(answers), "max_length": max_length_for(answers),
                      "batch_size": setup.batch}
    if entry.estimate in est.LORA_KINDS:
        rank = LoraSettings.model_fields["r"].default * (2 if n_examples >= 2000 else 1)
        settings.update(r=rank, alpha=2 * rank)
    if "corpus" in entry.needs:  # continued pre-training: one pass over the corpus, longer rows
        settings.update(epochs=1.0, max_length=est.CORPUS_ROW_TOKENS)
    if setup.grad_accum > 1:
        settings["grad_accum"] = setup.grad_accum
    if setup.grad_checkpointing:
        settings["grad_checkpointing"] = True
    if budget is not None and estimate.train_hours > budget:
        load = workload(answers)
        per_step = setup.batch * setup.grad_accum
        if "corpus" in entry.needs:  # raw text cut into max_length windows, batch_size windows a micro-batch
            total_steps = load.corpus_tokens / (settings["max_length"] * per_step)
        else:  # batch_size examples a micro-batch, however packing lays them out
            total_steps = load.train_tokens / load.query_tokens / per_step
        settings["max_steps"] = max(1, math.floor(total_steps * budget / estimate.train_hours))
    return settings


def from_plan_dir(path: str, plan_dir: Path) -> str:
    """A path as the user typed it (relative to where they ran `advise`) rewritten relative to the plan's folder,
    which is what `compare` resolves it against; `{data}` and absolute paths stay as they are."""
    if path.startswith("{data}") or Path(path).expanduser().is_absolute():
        return path
    return Path(os.path.relpath(path, plan_dir)).as_posix()


def eval_limit_for(answers: Answers, chosen: list[str], shape: est.ModelShape, device: Device) -> int:
    """Eval items per strategy: EVAL_ITEMS' middle without a budget; with one, as many as fit its scoring share."""
    fewest, default, most = EVAL_ITEMS
    budget = budget_hours(answers, device)
    if budget is None:
        return default
    load = workload(answers)
    item_seconds = sum(2 * shape.compute_params * (load.query_tokens + load.extra_prompt_tokens(s))
                       / (device.tflops * 1e12 * est.gpu_mfu(device, PLAN_BATCH * load.query_tokens))
                       + (0 if device.is_gpu else SCORING_OVERHEAD_S) for s in chosen)
    return max(fewest, min(most, math.floor(budget * 3600 * EVAL_BUDGET_SHARE / item_seconds)))


def build_plan(answers: Answers, ranking: list[tuple[str, float]], estimates: dict, setups: dict, device: Device,
               warnings: list[str], plan_dir: Path = Path("."), launch: dict | None = None) -> str:
    """A plan `adapt compare` runs as is; placeholders (and a warning) where the answers name no file. `launch`: the
    plan's launch section (launch_section), left out when empty."""
    chosen = plan_strategies(ranking)
    task: dict = {"name": answers.task_name, "type": answers.task_type or "classification",
                  "eval": from_plan_dir(answers.eval or "data/eval.jsonl", plan_dir),
                  "eval_limit": eval_limit_for(answers, chosen, est.model_shape(answers.model), device)}
    if answers.labelled_examples:  # train on as many examples as the estimates assumed
        task["train_limit"] = answers.labelled_examples
    if answers.task_type is None:
        warnings.append("task_type unknown: the plan assumes classification.")
    if answers.eval is None:
        warnings.append("No eval file given: the plan points at data/eval.jsonl — edit it before `adapt compare`.")
    needs = {need for s in chosen for need in registry.get(s).needs}
    if "train" in needs:
        task["train"] = from_plan_dir(answers.train or "data/train.jsonl", plan_dir)
        if answers.train is None:
            warnings.append("No train file given: the plan points at data/train.jsonl — edit it.")
    if "preferences" in needs and answers.preferences:
        task["preferences"] = from_plan_dir(answers.preferences, plan_dir)
    if "corpus" in needs:
        task["corpus"] = from_plan_dir(answers.corpus or "data/corpus.jsonl", plan_dir)
        if answers.corpus is None:
            warnings.append("No corpus path given: the plan points at data/corpus.jsonl — edit it.")
    plan = {
        "name": f"advised-{answers.task_name}",
        "model": answers.model,
        "output_dir": from_plan_dir(f"results/{answers.task_name}", plan_dir),
        "tasks": [task],
        "strategies": [strategy_settings(s, answers, estimates[s], setups[s], budget_hours(answers, device))
                       for s in chosen],
        "forgetting": {"enabled": any(registry.get(s).changes_weights for s in chosen),
                       **(GPU_FORGETTING if device.is_gpu else CPU_FORGETTING)},
        "cost": {"gpu_hour_usd" if device.is_gpu else "cpu_hour_usd": round(device.usd_per_hour, 4),
                 "usd_per_1m_input_tokens": workload(answers).usd_per_1m_input_tokens},
        **({"launch": launch} if launch else {}),
    }
    header = (f"# Written by `adapt advise`: ranking {', '.join(s for s, _ in ranking[:5])}.\n"
              "# Run it with `adapt compare {this file}`. Relative paths are relative to this file's folder.\n")
    return header + yaml.safe_dump(plan, sort_keys=False)


# --- evidence loop ---------------------------------------------------------------------------------------


def _ordinal(rank: int) -> str:
    return f"{rank}{'tsnrhtdd'[(rank // 10 % 10 != 1) * (rank % 10 < 4) * rank % 10::4]}"


def rerank(recommendation: Recommendation, results) -> Recommendation:
    """Measured strategies first, in the order the judge (base.judge, the same one the report uses) ranks them;
    unmeasured ones keep their prior order after them. Says where measurement overturned the prior."""
    verdict = judge(measured(results), recommendation.answers.forgetting_tolerance)
    if verdict is None:
        recommendation.warnings.append("The results directory holds no successful runs: ranking unchanged.")
        return recommendation
    modes = {(r.task, r.scoring) for r in results if r.status.value == "ok"}
    mixed = sorted({task for task, _ in modes if sum(t == task for t, _ in modes) > 1})
    if mixed:
        recommendation.warnings.append(f"Runs of {', '.join(mixed)} were scored in different ways (rank and generate), "
                                       "so their scores are not comparable: re-run the older ones with `adapt compare`.")
    rows = [{"label": c.label, "strategy": c.strategy, "metric": c.metric, "usd_per_1m_queries": c.usd_per_1m_queries,
             "retained": c.retained, "value": c.score, "utility": round(verdict.utility(c), 4)} for c in verdict.ranked]
    prior_rank = {s: i for i, (s, _) in enumerate(recommendation.ranking)}
    best = verdict.pick
    expected = min(verdict.ranked, key=lambda c: prior_rank.get(c.strategy, len(prior_rank)))
    overturned = []
    if expected is not best:
        rank = _ordinal(prior_rank.get(expected.strategy, len(prior_rank)) + 1)
        if expected.score < best.score:
            overturned.append(f"{expected.label} was ranked {rank} but measured {expected.metric} "
                              f"{expected.score:.2f} < {best.label} {best.score:.2f}")
        else:
            why = ("scores within the best run's 95% interval at lower cost" if verdict.cheaper_within_ci
                   else "loses less general ability")
            overturned.append(f"{expected.label} was ranked {rank} and measured {expected.metric} {expected.score:.2f}, "
                              f"but {best.label} ({best.score:.2f}) {why}")
    measured_kinds = [c.strategy for c in verdict.ranked]
    scores = dict(recommendation.ranking)
    ranking = [(c.strategy, scores.get(c.strategy, 0.0)) for c in verdict.ranked if c.strategy in scores]
    ranking = list(dict(ranking).items()) + [(s, v) for s, v in recommendation.ranking if s not in measured_kinds]
    return replace(recommendation, ranking=ranking, measured=rows, overturned=overturned)

"""Several GPUs (issue 11, item 4): per-GPU memory under DDP vs FSDP checked against hand arithmetic, time over N
GPUs, and the launch `advise` proposes: ddp for adapters, fsdp where whole-model training fits only sharded, one
mode per plan, written as a launch section that compare's loader and launch check accept."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from advisor import estimate as est
from advisor.advise_cmd import estimate_rows, launch_summary, write_plan
from advisor import engine
from advisor.engine import Recommendation, launch_mode, plan_strategies, recommend
from advisor.plan_time import plan_times
from advisor.hardware import GIB, Device
from advisor.questions import Answers
from base.errors import AdaptError
from base.plan import load_plan, run_specs
from runners.launch import check_launchable

# A 1.2B-parameter shape with round numbers, so every byte below is worked out by hand.
ROUND_1B = est.ModelShape("round-1b", hidden=2048, layers=16, heads=16, kv_heads=16, intermediate=8192, vocab=32000,
                          tied=False)
LAYER = 4 * 2048 * 2048 + 3 * 2048 * 8192 + 2 * 2048  # q, k, v, o; gate, up, down; two RMSNorms = 67,112,960
ROOT = 2 * 32000 * 2048 + 2048  # untied embeddings and LM head, final norm = 131,074,048
PARAMS = 16 * LAYER + ROOT  # 1,204,881,408


def full_ft(processes: int, distributed: str = "ddp", batch: int = 8) -> est.TrainSetup:
    return est.TrainSetup(strategy="full_ft", seq_len=256, batch=batch, precision="bf16", processes=processes,
                          distributed=distributed)


def test_the_round_shape_has_the_parameters_counted_by_hand():
    assert ROUND_1B.params == PARAMS == 1_204_881_408


def test_ddp_keeps_a_whole_replica_per_gpu_and_a_quarter_of_the_rows():
    one = est.training_memory(ROUND_1B, full_ft(1))
    ddp = est.device_training_memory(ROUND_1B, full_ft(4))
    assert ddp.weights == PARAMS * 2  # bf16 weights, whole on every GPU
    assert ddp.training_state == PARAMS * 2 * 2 + PARAMS * 2  # two bf16 AdamW moments + DDP's bucket copy of the grads
    assert ddp.gradients == PARAMS * 2
    assert ddp.activations == pytest.approx(one.activations / 4)  # 8 rows over 4 GPUs: 2 each
    assert ddp.logits == pytest.approx(one.logits / 4)


def test_fsdp_shards_the_state_in_fp32_and_gathers_the_root_and_a_few_layers():
    ddp = est.device_training_memory(ROUND_1B, full_ft(4))
    fsdp = est.device_training_memory(ROUND_1B, full_ft(4, "fsdp"))
    # accelerate upcasts the trained shards to fp32 under mixed precision: 4 (weight) + 8 (moments) + 4 (gradient) / 4
    gathered = (ROOT + 3 * LAYER) * 2  # root unit + the layer computed + the one prefetched + its gradient, bf16
    assert fsdp.weights == pytest.approx(PARAMS * 4 / 4 + gathered)
    assert fsdp.training_state == pytest.approx(PARAMS * 8 / 4)
    assert fsdp.gradients == pytest.approx(PARAMS * 4 / 4)
    assert fsdp.activations == ddp.activations and fsdp.logits == ddp.logits  # the same rows per GPU
    assert fsdp.weights / GIB == pytest.approx(1.74, abs=0.01) and ddp.weights / GIB == pytest.approx(2.24, abs=0.01)
    assert fsdp.total < ddp.total
    eight = est.device_training_memory(ROUND_1B, full_ft(8, "fsdp"))
    assert eight.training_state == pytest.approx(PARAMS * 8 / 8)  # twice the GPUs, half the state each


def test_one_process_is_the_single_gpu_estimate_unchanged():
    for strategy in ("full_ft", "lora", "qlora"):
        setup = est.TrainSetup(strategy=strategy, seq_len=512, batch=4, distributed="fsdp")
        assert est.device_training_memory(ROUND_1B, setup) == est.training_memory(ROUND_1B, setup)


def test_adapters_refuse_to_be_sized_sharded():
    with pytest.raises(AdaptError, match="qlora cannot be sharded"):
        est.device_training_memory(ROUND_1B, est.TrainSetup(strategy="qlora", processes=4, distributed="fsdp"))
    assert est.shardable("full_ft") and est.shardable("cpt") and not est.shardable("lora") and not est.shardable("rag+lora")


def test_n_gpus_train_n_times_as_fast_less_the_communication_prior():
    gpu = Device("no-optimizer-traffic", 80.0, 100.0, 1.0, 0.5, bandwidth_gbs=0.0)
    tokens = 1e7
    one = est.train_seconds(ROUND_1B, full_ft(1, batch=8), tokens, gpu)
    for mode in ("ddp", "fsdp"):  # 4 GPUs at global batch 32: each runs the one-GPU micro-batch of 8 rows
        four = est.parallel_train_seconds(ROUND_1B, full_ft(4, mode, batch=32), tokens, gpu)
        assert four == pytest.approx(one / (4 * est.SCALING_EFFICIENCY[mode]))
    assert est.parallel_train_seconds(ROUND_1B, full_ft(1), tokens, gpu) == est.train_seconds(ROUND_1B, full_ft(1), tokens, gpu)


def answers(**given) -> Answers:
    return Answers(task_name="sst2", task_type="classification", train="{data}/sst2/train.jsonl",
                   eval="{data}/sst2/eval.jsonl", model="llama-3.1-8b", **given)


FOUR_L4 = {"labelled_examples": 5000, "gpu": "L4", "gpu_count": 4}  # adapters rank first
FOUR_A100_FULL = {"labelled_examples": 100_000, "gpu": "A100-80GB", "gpu_count": 4, "forgetting_tolerance": "high"}


def test_adapters_on_four_gpus_get_ddp_and_per_gpu_reasons():
    rec = recommend(answers(**FOUR_L4))
    assert rec.top == "lora"
    assert rec.launch == {"num_processes": 4, "distributed": "ddp", "mixed_precision": "bf16"}
    lora = rec.estimates["lora"]
    assert (lora.processes, lora.distributed) == (4, "ddp") and lora.peak_memory_gib <= 22.5 * 0.95
    # full FT of an 8B model: ~78 GiB a replica, ~35 GiB a GPU sharded: over an L4's 22.5 either way
    assert rec.estimates["full_ft"].distributed == "fsdp"
    assert rec.ruled_out["full_ft"] == ["hardware_fit: needs ~34.7 GiB per GPU to train (fsdp over 4 GPUs), "
                                        "one L4 has 22.5 GiB"]
    reasons = [r for rule in rec.fired if rule.id == "hardware_fit" for r in [rule.because]]
    assert reasons and all("one L4 has 22.5 GiB" in r for r in reasons)  # not "4x L4 has 90 GiB"
    assert launch_summary(rec) == f"launch: 4 processes, ddp (per-GPU peak {rec.estimates['lora'].peak_memory_gib:.1f} GiB of 22.5)"
    assert estimate_rows(rec)[0][3].startswith(f"{lora.peak_memory_gib:.1f} GiB/GPU")


def test_a_plan_keeps_the_mode_that_runs_more_of_its_candidates():
    """Full FT ranks first on 4 A100s but fits them only sharded, and the adapters behind it cannot be sharded: DDP
    keeps three of the plan's candidates where FSDP would keep one, so full FT is left for a plan of its own."""
    rec = recommend(answers(**FOUR_A100_FULL))
    assert rec.ranking[0][0] == "lora" and rec.launch["distributed"] == "ddp"
    shape = est.model_shape("llama-3.1-8b")
    replica = est.device_training_memory(shape, est.TrainSetup(strategy="full_ft", processes=4, seq_len=256, batch=4))
    assert replica.total_gib > 80 * 0.95  # would not fit unsharded
    assert rec.ruled_out["full_ft"][0].startswith("launch: fits 4 GPUs only sharded")
    trained = [s for s in plan_strategies(rec.ranking) if est.trains(s)]
    assert {"lora", "qlora"} <= set(trained) and all(rec.estimates[s].distributed == "ddp" for s in trained)


def test_sharding_wins_when_it_keeps_as_many_candidates_and_ranks_higher():
    estimates = recommend(answers(**FOUR_A100_FULL)).estimates  # full_ft: fsdp; the adapters: ddp
    assert estimates["full_ft"].distributed == "fsdp"
    mode, excluded = launch_mode([("full_ft", 5.0), ("lora", 3.0), ("zero_shot", 1.0)], estimates)
    assert mode == "fsdp" and list(excluded) == ["lora"]
    assert excluded["lora"].startswith("cannot be sharded, and the plan shards with fsdp for full_ft")
    assert launch_mode([("lora", 5.0), ("full_ft", 3.0)], estimates)[0] == "ddp"
    assert launch_mode([("full_ft", 5.0), ("lora", 3.0), ("qlora", 2.0)], estimates)[0] == "ddp"  # keeps two, not one


def advised_plan(folder: Path, given: dict) -> tuple[Recommendation, Path]:
    """recommend() on answers naming real (tiny) data files, its plan written as `advise` writes it."""
    files = {name: folder / f"{name}.jsonl" for name in ("train", "eval", "corpus")}
    for file in files.values():
        file.write_text((json.dumps({"text": "a fine film " * 50, "label": "positive"}) + "\n") * 200, encoding="utf-8")
    rec = recommend(replace(answers(**given), **{name: str(file) for name, file in files.items()}), plan_dir=folder)
    write_plan(rec.plan_yaml, folder / "plan.yaml")
    return rec, folder / "plan.yaml"


@pytest.mark.parametrize("given,candidates", [(FOUR_L4, engine.PLAN_CANDIDATES), (FOUR_A100_FULL, 1)], ids=["ddp", "fsdp"])
def test_the_written_plan_loads_and_compare_would_launch_it(tmp_path, monkeypatch, given, candidates):
    monkeypatch.setattr(engine, "PLAN_CANDIDATES", candidates)  # one candidate: full FT alone, sharded
    rec, plan_file = advised_plan(tmp_path, given)
    assert rec.launch["distributed"] == ("ddp" if candidates > 1 else "fsdp")
    plan = load_plan(plan_file)
    assert plan.launch.num_processes == 4 and plan.launch.distributed == rec.launch["distributed"]
    assert plan.launch.mixed_precision == "bf16"
    specs = run_specs(plan, device="cuda")
    check_launchable(specs, source=str(plan_file))  # raises when compare would refuse it
    if plan.launch.distributed == "fsdp":  # the check is real: the same plan on a CPU is refused
        with pytest.raises(AdaptError, match="needs GPUs"):
            check_launchable(run_specs(plan, device="cpu"))


@pytest.mark.parametrize("given", [{"labelled_examples": 5000, "gpu": "L4"}, {"labelled_examples": 5000, "gpu": "none"},
                                   {"labelled_examples": 100_000, "gpu": "A100-80GB", "forgetting_tolerance": "high"}])
def test_one_gpu_or_a_cpu_writes_no_launch_section(given):
    rec = recommend(answers(**given))
    assert rec.launch == {} and "launch" not in yaml.safe_load(rec.plan_yaml)
    assert all(e.processes == 1 and e.distributed == "" for e in rec.estimates.values())
    assert launch_summary(rec) is None


def test_the_dry_run_times_training_over_the_plans_gpus(tmp_path):
    _, plan_file = advised_plan(tmp_path, FOUR_L4)
    times = {count: {t.run_id.split("__")[1]: t.train_s for t in plan_times(plan, run_specs(plan, device="cuda"))}
             for count, plan in ((4, load_plan(plan_file)),
                                 (1, load_plan(plan_file, ["launch.num_processes=1", "launch.distributed=none"])))}
    assert times[4]["zero_shot"] == times[1]["zero_shot"] == 0
    # 4 GPUs at most 4x faster; the communication prior and smaller per-GPU micro-batches take some of that back
    assert times[1]["lora"] / 4 < times[4]["lora"] < times[1]["lora"] / 2

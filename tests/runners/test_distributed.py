"""Runs launched as processes of their own: a real 2-process DDP LoRA run on CPU (gloo) against a 1-process run with
the same global batch (training, then scoring and forgetting checks split between the processes), and a training
process killed mid-run that compare records, survives and later resumes."""
from __future__ import annotations

import json
import signal
import threading
import time

import pytest

from base.plan import load_plan, run_specs
from base.results import ResultStore, RunStatus
from runners.compare import compare

# Tolerances of the 1- vs 2-process comparison (relative on losses, absolute on adapter weights). The two runs see
# the same examples per optimizer step; LoRA differs only in float summation order (each process packs and sums its
# half, DDP averages gradients): measured, losses equal to the 5 decimals recorded, weights within 1.4e-6. QLoRA's
# bitsandbytes CPU kernels also depend on the batch's shape: measured, losses within 5e-4 relative.
TOLERANCE = {"lora": (1e-4, 1e-5), "qlora": (2e-3, 1e-3)}
SCORE_ATOL = {"lora": 1e-3, "qlora": 2e-2}  # on the eval items' choice log-likelihoods (about -16 here)
# the LoRA run's forgetting checks: 4 items of two benchmarks (conftest ROWS: 3+2+2+3 choices, so 10 lm-eval requests
# each; lm-eval strides the items, giving each of 2 processes 5) and the 3-text perplexity
FORGETTING = "{benchmarks: [arc_easy, boolq], limit: 4}"


TASK = "  - {name: toy, type: classification, train: train.jsonl, eval: eval.jsonl}"


def write_plan(folder, model_dir, strategies: str, launch: str = "", train_rows: int = 10,
               forgetting: str = "{enabled: false}", eval_rows: int = 4, tasks: str = TASK):
    rows = [{"text": f"the movie was {'great' if i % 2 else 'awful'} and {'wonderful' if i % 3 else 'boring'} {i}",
             "label": "positive" if i % 2 else "negative"} for i in range(train_rows + eval_rows)]
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:train_rows]))
    (folder / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[train_rows:]))
    path = folder / "plan.yaml"
    path.write_text(f"""\
model: {model_dir}
device: cpu
output_dir: out
tasks:
{tasks}
strategies:
{strategies}
forgetting: {forgetting}
{launch}
""")
    return path


def run_plan(path, overrides=()):
    plan = load_plan(path, list(overrides))
    return plan, compare(plan, run_specs(plan, device="cpu"))


def adapter_weights(folder):
    from safetensors.torch import load_file

    return load_file(folder / "adapter_model.safetensors")


# 9 train examples in global micro-batches of 4 (groups 4, 4, 1): on 2 processes the last group leaves the second
# process an empty share (its zero-loss forward keeps DDP in step); 1 held-out example, scored by one process.
LORA = "  - {strategy: lora, epochs: 2, batch_size: 4, grad_accum: 2, learning_rate: 0.01, dropout: 0.0, max_length: 48, warmup_ratio: 0.0, eval_fraction: 0.1, max_new_tokens: 2}"


@pytest.mark.parametrize("strategy", ["lora", "qlora"])
def test_two_process_ddp_matches_one_process(strategy, tmp_path, tiny_model_dir, bench_data):
    """QLoRA: each process loads its own 4-bit model on its own device (device_map {"": local process}).
    Both processes score half the eval items and the result is the 1-process one; so are LoRA's forgetting checks."""
    loss_rtol, weight_atol = TOLERANCE[strategy]
    forgetting = FORGETTING if strategy == "lora" else "{enabled: false}"
    results = {}
    for processes in (1, 2):
        folder = tmp_path / f"p{processes}"
        folder.mkdir()
        plan, (result,) = run_plan(write_plan(folder, tiny_model_dir, LORA.replace("lora", strategy), forgetting=forgetting),
                                   [f"launch.num_processes={processes}"])
        assert result.status is RunStatus.ok, result.error
        run_dir = plan.output_dir / "artifacts" / result.run_id
        assert sorted(p.name for p in (run_dir / "model").iterdir()) == ["README.md", "adapter_config.json",
                                                                         "adapter_model.safetensors"]  # one adapter
        assert [r.run_id for r in ResultStore(plan.output_dir).all()] == [result.run_id]  # one result
        log = (run_dir / "output.log").read_text()
        predictions = [json.loads(line) for line in (run_dir / "predictions.jsonl").read_text().splitlines()]
        results[processes] = (result, adapter_weights(run_dir / "model"), log, predictions)
    (one, one_weights, one_log, one_rows), (two, two_weights, two_log, two_rows) = results[1], results[2]
    assert one.cost["processes"] == 1 and two.cost["processes"] == 2
    assert "process 0/2 (MULTI_CPU, cpu:0): 5 of 9 examples an epoch" in two_log  # each process trained on its share
    assert "process 1/2 (MULTI_CPU, cpu:0): 4 of 9 examples an epoch" in two_log
    assert one.config_hash == two.config_hash  # how many processes is not part of what the run is
    steps = [step for step, _ in one.curves["train_loss"]]
    assert steps == [1, 2, 3, 4] == [step for step, _ in two.curves["train_loss"]]  # 3 groups -> 2 steps an epoch
    assert [loss for _, loss in two.curves["train_loss"]] == pytest.approx([loss for _, loss in one.curves["train_loss"]],
                                                                           rel=loss_rtol)
    assert [loss for _, loss in two.curves["eval_loss"]] == pytest.approx([loss for _, loss in one.curves["eval_loss"]],
                                                                          rel=loss_rtol)
    assert one.cost["train_steps"] == two.cost["train_steps"] == 4
    assert set(one_weights) == set(two_weights)
    for name, weight in one_weights.items():  # both processes' gradients went in: half a batch would land elsewhere
        assert (weight - two_weights[name]).abs().max() < weight_atol, name
    assert any((w != 0).any() for n, w in one_weights.items() if "lora_B" in n)  # and training moved the adapter

    # scoring: each process ranked 2 of the 4 eval items; merged in order, the items and metrics are the 1-process ones
    assert "process 0/2: scoring eval items: 2 of 4" in two_log and "process 1/2: scoring eval items: 2 of 4" in two_log
    assert "scoring eval items" not in one_log
    assert [r["id"] for r in two_rows] == [r["id"] for r in one_rows] == ["eval-1", "eval-2", "eval-3", "eval-4"]
    for mine, theirs in zip(two_rows, one_rows):
        assert {k: v for k, v in mine.items() if k != "scores"} == {k: v for k, v in theirs.items() if k != "scores"}
        assert mine["scores"] == pytest.approx(theirs["scores"], abs=SCORE_ATOL[strategy])
    assert two.metrics == one.metrics
    for field in ("prompt_tokens_per_query", "completion_tokens_per_query", "usd_per_1m_queries"):
        assert two.cost[field] == one.cost[field]
    assert two.cost["latency_p50_s"] > 0  # the 4 items were timed, 2 on each process

    if strategy == "lora":  # forgetting: lm-eval gave each process half the requests of each of its 4 evaluations
        assert two_log.count("process 0/2: forgetting: 5 lm-eval requests") == 4
        assert two_log.count("process 1/2: forgetting: 5 lm-eval requests") == 4
        assert "lm-eval requests" not in one_log
        assert "error" not in two.forgetting, two.forgetting
        assert set(two.forgetting["benchmarks"]) == {"arc_easy", "boolq"}
        for name, row in one.forgetting["benchmarks"].items():
            assert two.forgetting["benchmarks"][name] == row and row["n"] == 4
        assert two.forgetting["perplexity"] == pytest.approx(one.forgetting["perplexity"], rel=1e-5)


def predictions_of(plan, result):
    return [json.loads(line) for line in (plan.output_dir / result.predictions_file).read_text().splitlines()]


def test_two_process_prompting_runs_match_one_process(tmp_path, tiny_model_dir):
    """Few-shot (nothing but scoring) under a 2-process launch: 5 eval items, 3 on the first process and 2 on the
    second, ranked in 2 demonstration orders with calibration (rank task) or generated (generate task): each run's
    items, metrics and prompt costs are the 1-process ones, and one result is recorded per run."""
    few_shot = ("  - {strategy: few_shot, k: 2, orderings: 2, calibrate: true, max_new_tokens: 3, tasks: [toy]}\n"
                "  - {strategy: few_shot, k: 2, max_new_tokens: 3, tasks: [toy_generated], label: generating}")
    tasks = TASK + "\n" + TASK.replace("name: toy,", "name: toy_generated, scoring: generate,")
    runs = {}
    for processes in (1, 2):
        folder = tmp_path / f"p{processes}"
        folder.mkdir()
        plan, results = run_plan(write_plan(folder, tiny_model_dir, few_shot, eval_rows=5, tasks=tasks),
                                 [f"launch.num_processes={processes}"])
        assert [r.status for r in results] == [RunStatus.ok] * 2, [r.error for r in results]
        assert len(ResultStore(plan.output_dir).all()) == 2
        runs[processes] = [(result, predictions_of(plan, result)) for result in results]
    for (one, one_rows), (two, two_rows) in zip(runs[1], runs[2]):
        assert one.task == two.task and len(two_rows) == 5
        for mine, theirs in zip(two_rows, one_rows):
            assert {k: v for k, v in mine.items() if k != "scores"} == {k: v for k, v in theirs.items() if k != "scores"}
            assert mine.get("scores", []) == pytest.approx(theirs.get("scores", []), abs=1e-3)
        assert two.metrics == one.metrics
        for field in ("prompt_tokens_per_query", "completion_tokens_per_query", "usd_per_1m_queries"):
            assert two.cost[field] == one.cost[field]
    assert runs[1][0][0].metrics["rank_by"] == "sum_logprob_calibrated_mean_of_2_orders"
    assert runs[1][1][0].metrics["scoring"] == "generate"
    logs = sorted((tmp_path / "p2" / "out" / "artifacts").glob("*/output.log"))
    assert len(logs) == 2
    for log in logs:
        text = log.read_text()
        assert "process 0/2: scoring eval items: 3 of 5" in text and "process 1/2: scoring eval items: 2 of 5" in text


def test_killed_training_process_is_recorded_and_resumed(tmp_path, tiny_model_dir):
    """SIGKILL (what the OOM killer sends) hits the LoRA run's process after its first epoch checkpoint: compare
    records the run as failed with the signal, still runs zero-shot, and a re-run resumes LoRA from the checkpoint."""
    import psutil

    strategies = ("  - {strategy: lora, epochs: 40, batch_size: 2, learning_rate: 0.01, max_length: 48, eval_fraction: 0.1, max_new_tokens: 2}\n"
                  "  - {strategy: zero_shot, max_new_tokens: 2}")
    path = write_plan(tmp_path, tiny_model_dir, strategies)
    plan = load_plan(path)
    lora_spec = run_specs(plan, device="cpu")[0]
    marker = lora_spec.run_dir / "checkpoints" / "latest.json"
    killed: list[int] = []

    def kill_after_first_checkpoint():
        deadline = time.time() + 300
        while time.time() < deadline and not marker.exists():
            time.sleep(0.02)
        for child in psutil.Process().children(recursive=True):
            if "runners.launch" in " ".join(child.cmdline()):
                child.send_signal(signal.SIGKILL)
                killed.append(child.pid)

    killer = threading.Thread(target=kill_after_first_checkpoint)
    killer.start()
    lora, zero_shot = compare(plan, run_specs(plan, device="cpu"))
    killer.join()
    assert killed
    assert lora.status is RunStatus.failed and "SIGKILL" in lora.error
    assert zero_shot.status is RunStatus.ok
    epoch_at_kill = json.loads(marker.read_text())["epoch"]
    assert 1 <= epoch_at_kill < 40

    again = compare(load_plan(path), run_specs(load_plan(path), device="cpu"))
    resumed = {r.label: r for r in again}["lora"]
    assert resumed.status is RunStatus.ok, resumed.error
    assert resumed.cost["resumed_from_epoch"] >= epoch_at_kill
    assert resumed.cost["epochs_done"] == 40
    assert [step for step, _ in resumed.curves["train_loss"]] == list(range(1, resumed.cost["train_steps"] + 1))


def test_mixed_precision_reaches_the_training_process(tmp_path, tiny_model_dir):
    """launch.mixed_precision=bf16 makes the run's Accelerator autocast: the same run, slightly different losses."""
    curves = {}
    for precision in ("no", "bf16"):
        folder = tmp_path / precision
        folder.mkdir()
        _, (result,) = run_plan(write_plan(folder, tiny_model_dir, LORA), [f"launch.mixed_precision={precision}"])
        assert result.status is RunStatus.ok, result.error
        curves[precision] = [loss for _, loss in result.curves["train_loss"]]
    assert curves["bf16"] != curves["no"]
    assert curves["bf16"] == pytest.approx(curves["no"], rel=1e-2)

"""Runs launched as processes of their own: a real 2-process DDP LoRA run on CPU (gloo) against a 1-process run with
the same global batch, and a training process killed mid-run that compare records, survives and later resumes."""
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


def write_plan(folder, model_dir, strategies: str, launch: str = "", train_rows: int = 10):
    rows = [{"text": f"the movie was {'great' if i % 2 else 'awful'} and {'wonderful' if i % 3 else 'boring'} {i}",
             "label": "positive" if i % 2 else "negative"} for i in range(train_rows + 4)]
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:train_rows]))
    (folder / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[train_rows:]))
    path = folder / "plan.yaml"
    path.write_text(f"""\
model: {model_dir}
device: cpu
output_dir: out
tasks:
  - {{name: toy, type: classification, train: train.jsonl, eval: eval.jsonl}}
strategies:
{strategies}
forgetting: {{enabled: false}}
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
def test_two_process_ddp_matches_one_process(strategy, tmp_path, tiny_model_dir):
    """QLoRA: each process loads its own 4-bit model on its own device (device_map {"": local process})."""
    loss_rtol, weight_atol = TOLERANCE[strategy]
    results = {}
    for processes in (1, 2):
        folder = tmp_path / f"p{processes}"
        folder.mkdir()
        plan, (result,) = run_plan(write_plan(folder, tiny_model_dir, LORA.replace("lora", strategy)),
                                   [f"launch.num_processes={processes}"])
        assert result.status is RunStatus.ok, result.error
        run_dir = plan.output_dir / "artifacts" / result.run_id
        assert sorted(p.name for p in (run_dir / "model").iterdir()) == ["README.md", "adapter_config.json",
                                                                         "adapter_model.safetensors"]  # one adapter
        assert [r.run_id for r in ResultStore(plan.output_dir).all()] == [result.run_id]  # one result
        log = (run_dir / "output.log").read_text()
        results[processes] = (result, adapter_weights(run_dir / "model"), log)
    (one, one_weights, _), (two, two_weights, two_log) = results[1], results[2]
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

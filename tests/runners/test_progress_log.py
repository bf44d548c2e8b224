"""Progress in a log (CI, `make demo | tee`): a line per phase and heartbeats with step/total, loss and ETA."""
from __future__ import annotations

import io
import json
import re
import time

import pytest
from rich.console import Console

from base import progress
from base.plan import load_plan, run_specs
from runners.compare import compare

pytestmark = pytest.mark.usefixtures("one_thread")


def log_console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=False, width=200), out


def write_toy_data(folder) -> None:
    """8 train and 4 eval sentiment rows, as train.jsonl and eval.jsonl."""
    rows = [{"text": f"the movie was {'great' if i % 2 else 'awful'} {i}", "label": "positive" if i % 2 else "negative"}
            for i in range(12)]
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:8]))
    (folder / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[8:]))


def test_tiny_compare_logs_phases_and_a_training_heartbeat(tmp_path, tiny_model_dir, monkeypatch):
    write_toy_data(tmp_path)
    (tmp_path / "plan.yaml").write_text(f"""\
model: {tiny_model_dir}
output_dir: out
tasks: [{{name: toy, type: classification, train: train.jsonl, eval: eval.jsonl}}]
strategies:
  - {{strategy: lora, max_steps: 4, batch_size: 2, max_length: 64, eval_fraction: 0}}
forgetting: {{enabled: false}}
""")
    monkeypatch.setenv(progress.HEARTBEAT_ENV, "0")  # every step is "30 s later", in the run's own process too
    console, out = log_console()
    plan = load_plan(tmp_path / "plan.yaml")
    (result,) = compare(plan, run_specs(plan, device="cpu"), console=console)
    log = out.getvalue()
    assert result.status.value == "ok", log
    assert "… run 1/1: toy · lora" in log
    assert "  · training (4 steps)" in log and re.search(r"  · training: done in \d+ s", log)
    assert "  · toy · lora: scoring (4 steps)" in log
    beats = re.findall(r"⋯ training: step (\d)/4 · loss (\d+\.\d{3}) · \d+ s elapsed · ETA \d+ s", log)
    loss_at_step = {int(step): float(loss) for step, loss in beats}  # the ticker may repeat a step; same figures
    assert loss_at_step == {int(step): round(loss, 3) for step, loss in result.curves["train_loss"]}
    assert "\x1b[" not in log  # plain text, no terminal codes


def test_heartbeat_keeps_coming_while_a_step_takes_longer_than_the_interval():
    console, out = log_console()
    with progress.LogDisplay(console, interval=0.5) as display, progress.showing(display):
        with progress.bar("forgetting checks", 10) as advance:
            advance(3)
            time.sleep(1.8)  # one long step: no advance calls, the ticker still reports
    lines = out.getvalue().splitlines()
    beats = [line for line in lines if line.startswith("  ⋯")]
    assert len(beats) >= 2, lines
    assert all("forgetting checks: step 3/10" in line and "ETA" in line for line in beats)
    assert lines[0] == "  · forgetting checks (10 steps)" and lines[-1].startswith("  · forgetting checks: done in")


def test_eta_and_durations_read_like_a_person_would_say_them():
    assert progress.duration(42.4) == "42 s"
    assert progress.duration(185) == "3 min 05 s"
    assert progress.duration(3720) == "1 h 02 min"
    display = progress.LogDisplay(Console(file=io.StringIO()))
    stage = progress._Stage("training", 40, started=time.monotonic() - 30, completed=10, fields={"loss": 1.23456})
    assert display.status(stage) == "training: step 10/40 · loss 1.235 · 30 s elapsed · ETA 1 min 30 s"


def test_cli_compare_log_has_heartbeats_and_none_of_the_unactionable_warnings(tmp_path, tiny_model_dir):
    """`make demo`-style: the CLI in a fresh process, output to a pipe (not a terminal), warnings shown as Python
    shows them by default — none of the filtered ones may appear."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    write_toy_data(tmp_path)
    (tmp_path / "plan.yaml").write_text(f"""\
model: {tiny_model_dir}
device: cpu
output_dir: out
tasks: [{{name: toy, type: classification, train: train.jsonl, eval: eval.jsonl}}]
strategies: [{{strategy: lora, max_steps: 3, batch_size: 2, max_length: 64, grad_checkpointing: true}}]
forgetting: {{enabled: false}}
""")
    root = Path(__file__).resolve().parents[2]
    script = ("import torch; torch.set_num_threads(1)\n"
              "from cli.app import app; app(['compare', 'plan.yaml'])\n")
    env = {**os.environ, "PYTHONPATH": str(root), "PYTHONWARNINGS": "default", progress.HEARTBEAT_ENV: "0"}  # every step a heartbeat
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log
    assert re.search(r"⋯ training: step \d/3 · loss \d+\.\d{3}", log)
    assert "is_gradient_checkpointing" not in log and "gradient_checkpointing_enable" not in log  # ours: fixed
    assert "gemm_4bit_forward" not in log


def test_lines_forwarded_from_a_run_process_count_as_signs_of_life():
    """compare forwards its run's own heartbeats; it must not add "still working" lines of its own between them."""
    console, out = log_console()
    with progress.LogDisplay(console, interval=0.5) as display:
        for step in range(8):
            display.echo(f"  ⋯ training: step {step}/8")
            time.sleep(0.2)
    lines = out.getvalue().splitlines()
    assert lines == [f"  ⋯ training: step {step}/8" for step in range(8)]

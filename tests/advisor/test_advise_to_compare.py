"""advise -> the plan it writes -> compare, on the real embedded model: the estimate `advise` showed is held against
what the run measured (train time and peak memory), so the two can never drift apart unnoticed."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from base.results import ResultStore, RunStatus

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TOLERANCE = 0.25  # issue 16: within 25% of measured


def adapt(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The CLI in a fresh process: peak memory is the process RSS, which an in-process run would inflate with
    whatever the test session already holds."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", "from cli.app import app; app()", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=900)


@pytest.mark.xfail(reason="issue 16: the CPU estimate was fitted to chat-template prompts and rows-per-batch packing; "
                          "classification now trains on plain prompts with batch_size examples a step (issue 9), and the "
                          "refit on an idle machine is still to do (measured here: 3331 MB estimated vs 2450 MB)", strict=False)
def test_advised_lora_estimate_matches_the_run_of_the_plan_it_writes(tmp_path, real_model_path):
    answers = ROOT / "configs" / "advisor" / "demo_answers.yaml"
    advised = adapt("advise", "--answers", str(answers), "--set", "labelled_examples=24", "--plan", "plan.yaml",
                    cwd=tmp_path)
    assert advised.returncode == 0, advised.stderr
    plan = yaml.safe_load((tmp_path / "plan.yaml").read_text())
    lora = next(s for s in plan["strategies"] if s["strategy"] == "lora")
    assert plan["tasks"][0]["train_limit"] == 24 and "max_steps" not in lora  # no budget cap on a tiny plan
    advice = json.loads((tmp_path / "plan.advice.json").read_text())
    estimate = advice["estimates"]["lora"]

    ran = adapt("compare", "plan.yaml", "--only", "lora", "--no-forgetting", "--output", "out",
                "tasks.sst2.eval_limit=4", cwd=tmp_path)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    [run] = [r for r in ResultStore(tmp_path / "out").all() if r.label == "lora"]
    assert run.status == RunStatus.ok
    measured_s, measured_mb = run.cost["train_time_s"], run.cost["peak_memory_mb"]
    predicted_s, predicted_mb = estimate["train_hours"] * 3600, estimate["peak_memory_gib"] * 1024
    assert abs(predicted_mb - measured_mb) <= TOLERANCE * measured_mb, (predicted_mb, measured_mb)
    assert abs(predicted_s - measured_s) <= TOLERANCE * measured_s, (predicted_s, measured_s)

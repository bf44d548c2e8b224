"""`adapt advise` through the CLI: non-interactive runs, JSON, errors, Ctrl-C, the evidence loop, and no torch."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml
from typer.testing import CliRunner

from cli.app import app
from base.plan import load_plan
from base.results import ResultStore, RunResult, RunStatus

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "configs" / "advisor" / "demo_answers.yaml"
runner = CliRunner()


def test_advise_does_not_import_torch(tmp_path, fixed_cpu_benchmark):
    """A fresh interpreter runs the whole command and then looks at sys.modules."""
    plan = tmp_path / "plan.yaml"
    script = (
        "import sys, json\n"
        "from typer.testing import CliRunner\n"
        "from cli.app import app\n"
        f"result = CliRunner().invoke(app, ['advise', '--answers', {str(DEMO)!r}, '--plan', {str(plan)!r}, '--json'])\n"
        "assert result.exit_code == 0, result.output\n"
        "heavy = [m for m in ('torch', 'transformers', 'peft', 'faiss', 'sentence_transformers', 'lm_eval', 'pandas', 'matplotlib', 'gradio', 'fastapi') if m in sys.modules]\n"
        "print(json.dumps({'heavy': heavy, 'top': json.loads(result.stdout)['top']}))\n"
    )
    env = {"ADAPTLAB_HOME": str(fixed_cpu_benchmark.parent), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {"heavy": [], "top": "lora"}
    assert plan.exists()


def test_answers_file_writes_a_plan_compare_can_load(tmp_path):
    plan = tmp_path / "out" / "plan.yaml"
    result = runner.invoke(app, ["advise", "--answers", str(DEMO), "--plan", str(plan)])
    assert result.exit_code == 0, result.output
    for expected in ("Recommendation", "lora", "Why", "no_corpus", "Ruled out", "fits on", str(plan)):
        assert expected in result.stdout
    loaded = load_plan(plan)
    assert [s.strategy for s in loaded.strategies][:2] == ["zero_shot", "lora"]
    assert not list(plan.parent.glob(".*.tmp"))  # the atomic write left no temp file


def test_sets_override_the_answers_file_and_json_is_parseable(tmp_path):
    plan = tmp_path / "plan.yaml"
    result = runner.invoke(app, ["advise", "-a", str(DEMO), "-s", "labelled_examples=20", "-s", "strict_format=no",
                                 "-s", "need=unknown", "--plan", str(plan), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["top"] == "few_shot"
    assert "few_labels" in [rule["id"] for rule in data["fired"]]
    assert data["plan"] == str(plan)
    assert data["estimates"]["lora"]["fits"]


def test_bad_set_exits_2_names_the_key_lists_choices_and_writes_nothing(tmp_path):
    plan = tmp_path / "plan.yaml"
    result = runner.invoke(app, ["advise", "-s", "forgetting_tolerance=zero", "--plan", str(plan)])
    assert result.exit_code == 2
    assert "forgetting_tolerance" in result.output and "low, medium, high" in result.output
    assert "Traceback" not in result.output
    assert not plan.exists()


def test_bad_answers_file_names_file_and_line(tmp_path):
    answers = tmp_path / "answers.yaml"
    answers.write_text("task_type: classification\ngpu: V100\n")
    result = runner.invoke(app, ["advise", "-a", str(answers), "--plan", str(tmp_path / "plan.yaml")])
    assert result.exit_code == 2
    assert f"{answers}:2" in result.output and "H100" in result.output


def test_ctrl_c_in_the_questionnaire_leaves_no_plan(tmp_path, monkeypatch):
    import advisor.advise_cmd as advise_cmd

    def interrupted(answers, console):
        raise KeyboardInterrupt

    monkeypatch.setattr(advise_cmd, "ask", interrupted)
    plan = tmp_path / "plan.yaml"
    result = runner.invoke(app, ["advise", "--interactive", "--plan", str(plan)])
    assert result.exit_code == 130
    assert not plan.exists() and not list(tmp_path.glob(".plan.yaml*"))


def test_interactive_through_the_cli(tmp_path):
    plan = tmp_path / "plan.yaml"
    # task name, type, need, knowledge_changes (asked: need is knowledge), citations, format, vocabulary, labelled examples, then Enter for the rest.
    keys = "faq\nqa\nknowledge\ndaily\nyes\n\n\n0\n" + "\n" * 40
    result = runner.invoke(app, ["advise", "--interactive", "--plan", str(plan), "-s", "has_corpus=yes"], input=keys)
    assert result.exit_code == 0, result.output
    assert "Top pick: rag" in result.stdout
    assert yaml.safe_load(plan.read_text())["tasks"][0]["name"] == "faq"


def save_run(store: ResultStore, label: str, accuracy: float) -> None:
    store.save(RunResult(run_id=f"sst2__{label}__x", task="sst2", strategy=label, label=label, status=RunStatus.ok,
                         config={}, config_hash="x", metrics={"accuracy": accuracy, "accuracy_ci": [accuracy - .05, accuracy + .05]},
                         cost={"usd_per_1m_queries": 6.0, "train_time_s": 10.0}))


def test_results_rerank_and_report_what_was_overturned(tmp_path):
    store = ResultStore(tmp_path / "results")
    save_run(store, "lora", 0.62)
    save_run(store, "few_shot", 0.71)
    result = runner.invoke(app, ["advise", "-a", str(DEMO), "--results", str(store.root), "--plan", str(tmp_path / "p.yaml"), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["top"] == "few_shot"
    assert data["overturned"] == ["lora was ranked 1st but measured accuracy 0.62 < few_shot 0.71"]
    text = runner.invoke(app, ["advise", "-a", str(DEMO), "--results", str(store.root), "--plan", str(tmp_path / "p.yaml")])
    assert "overturned:" in text.stdout and "Measured by compare" in text.stdout


def test_missing_results_directory_is_a_user_error(tmp_path):
    result = runner.invoke(app, ["advise", "-a", str(DEMO), "--results", str(tmp_path / "nope"), "--plan", str(tmp_path / "p.yaml")])
    assert result.exit_code == 2 and "results directory not found" in result.output

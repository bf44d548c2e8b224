"""`adapt compare` orchestration on a tiny model: results saved per run, resume, failures recorded, Ctrl-C keeps work."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from cli.app import app
from base.plan import load_plan, run_specs
from runners.compare import compare
from base.results import ResultStore, RunStatus


@pytest.fixture()
def plan_file(tmp_path, tiny_model_dir):
    rows = [{"text": f"the movie was {'great' if i % 2 else 'awful'} {i}", "label": "positive" if i % 2 else "negative"}
            for i in range(12)]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:8]))
    (tmp_path / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[8:]))
    path = tmp_path / "plan.yaml"
    path.write_text(f"""\
model: {tiny_model_dir}
output_dir: out
tasks:
  - name: toy
    type: classification
    train: train.jsonl
    eval: eval.jsonl
strategies:
  - strategy: zero_shot
    max_new_tokens: 3
  - strategy: few_shot
    k: 2
    max_new_tokens: 3
forgetting:
  enabled: false
""")
    return path


def test_compare_runs_saves_and_resumes(plan_file, monkeypatch):
    plan = load_plan(plan_file)
    specs = run_specs(plan, device="cpu")
    results = compare(plan, specs)
    assert [r.status for r in results] == [RunStatus.ok, RunStatus.ok]
    store = ResultStore(plan.output_dir)
    saved = {r.label: r for r in store.all()}
    assert set(saved) == {"zero_shot", "few_shot"}
    assert saved["few_shot"].metrics["k"] == 2
    assert saved["few_shot"].cost["prompt_tokens_per_query"] > saved["zero_shot"].cost["prompt_tokens_per_query"]
    predictions = (plan.output_dir / saved["zero_shot"].predictions_file).read_text().splitlines()
    assert len(predictions) == 4

    calls = []
    monkeypatch.setattr("runners.compare.run_in_child", lambda spec, on_line: calls.append(spec) or None)
    again = compare(plan, specs)
    assert calls == []  # both runs were found finished and skipped
    assert len(again) == 2


def test_failed_run_is_recorded_and_others_go_on(plan_file):
    """The zero-shot run fails inside its own process (calibration needs rank scoring): recorded, the next run goes on."""
    plan_file.write_text(plan_file.read_text().replace("    type: classification\n", "    type: classification\n    scoring: generate\n")
                         .replace("  - strategy: zero_shot\n", "  - strategy: zero_shot\n    calibrate: true\n"))
    plan = load_plan(plan_file)
    results = compare(plan, run_specs(plan, device="cpu"))
    by_label = {r.label: r for r in results}
    assert by_label["zero_shot"].status is RunStatus.failed
    assert "calibrate: true needs a rank-scored task" in by_label["zero_shot"].error
    assert by_label["few_shot"].status is RunStatus.ok
    stored = ResultStore(plan.output_dir).get(by_label["zero_shot"].run_id)
    assert stored.status is RunStatus.failed
    assert "Traceback" in (plan.output_dir / "artifacts" / stored.run_id / "error.txt").read_text()


def test_interrupt_keeps_finished_runs(plan_file, monkeypatch):
    from runners import launch

    def interrupted_on_few_shot(spec, on_line):
        if spec.strategy.strategy == "few_shot":
            raise KeyboardInterrupt
        return launch.run_in_child(spec, on_line)

    monkeypatch.setattr("runners.compare.run_in_child", interrupted_on_few_shot)
    plan = load_plan(plan_file)
    with pytest.raises(KeyboardInterrupt):
        compare(plan, run_specs(plan, device="cpu"))
    assert [r.label for r in ResultStore(plan.output_dir).all()] == ["zero_shot"]


def test_cli_dry_run_and_bad_plan(plan_file, tmp_path):
    cli = CliRunner()
    done = cli.invoke(app, ["compare", str(plan_file), "--dry-run", "tasks.toy.eval_limit=2"])
    assert done.exit_code == 0, done.output
    assert "toy__zero_shot__" in done.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(plan_file.read_text().replace("k: 2", "k: -1"))
    failed = cli.invoke(app, ["compare", str(bad)])
    assert failed.exit_code == 2
    assert "bad.yaml:12" in failed.output and "strategies.1.k" in failed.output
    assert "Traceback" not in failed.output


def test_other_machines_of_a_multi_node_launch_only_join_multi_process_runs(plan_file, monkeypatch):
    """machine_rank 1 lends its processes to the multi-process runs (training, and prompting runs that only score) and
    records nothing (machine 0 does); a single-process run (RAG) is machine 0's alone."""
    plan_file.write_text(plan_file.read_text() + "launch: {num_processes: 4, num_machines: 2, machine_rank: 1, main_process_ip: 10.0.0.1}\n")
    text = plan_file.read_text().replace("strategies:\n", "strategies:\n  - {strategy: lora, max_steps: 1}\n"
                                         "  - {strategy: rag, max_new_tokens: 3}\n")
    text = text.replace("    eval: eval.jsonl\n", "    eval: eval.jsonl\n    corpus: eval.jsonl\n")
    plan_file.write_text(text)
    launched = []
    monkeypatch.setattr("runners.compare.launch_child", lambda spec, on_line: launched.append(spec.strategy.name) or (0, ""))
    monkeypatch.setattr("runners.compare.run_in_child", lambda spec, on_line: pytest.fail("machine 1 ran a whole run"))
    plan = load_plan(plan_file)
    assert compare(plan, run_specs(plan, device="cpu")) == []
    assert launched == ["lora", "zero_shot", "few_shot"]  # not rag
    assert list(ResultStore(plan.output_dir).all()) == []

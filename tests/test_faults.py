"""The bad-input and fault matrix of issue 12, one test per case: each one failed before the hardening.

Runs use the tiny random model (tests/conftest.py); the kill -9 cases run `compare` in a child process that kills
itself at the chosen moment, then resume in this one.
"""
from __future__ import annotations

import json
import os
import pickle
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from base.errors import AdaptError
from base.results import ResultStore, RunStatus
from cli.app import app

REPO = Path(__file__).resolve().parent.parent
ROWS = [{"text": f"the movie was {'great' if i % 2 else 'awful'} {i}", "label": "positive" if i % 2 else "negative"}
        for i in range(16)]

pytestmark = pytest.mark.usefixtures("one_thread")


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


@pytest.fixture()
def workdir(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", ROWS[:12])
    write_jsonl(tmp_path / "eval.jsonl", ROWS[12:])
    return tmp_path


def plan_text(model_dir, *, strategies: str = "  - {strategy: zero_shot, max_new_tokens: 2}\n", task_extra: str = "",
              forgetting: bool = False, output_dir: str = "out") -> str:
    return (f"model: {model_dir}\ndevice: cpu\noutput_dir: {output_dir}\n"
            f"tasks:\n  - {{name: toy, type: classification, train: train.jsonl, eval: eval.jsonl{task_extra}}}\n"
            f"strategies:\n{strategies}forgetting:\n  enabled: {str(forgetting).lower()}\n")


def write_plan(workdir: Path, text: str) -> Path:
    path = workdir / "plan.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def invoke(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def assert_clear_error(done, *needles: str, code: int = 2) -> None:
    assert done.exit_code == code, done.output
    assert "Traceback" not in done.output
    for needle in needles:
        assert needle in done.output, done.output


# --- 1. names that become paths --------------------------------------------------------------------------


def test_label_with_path_traversal_is_refused_and_nothing_escapes(workdir, tiny_model_dir):
    strategies = "  - {strategy: zero_shot, label: x/../../../escaped, max_new_tokens: 2}\n"
    done = invoke("compare", write_plan(workdir, plan_text(tiny_model_dir, strategies=strategies)))
    assert_clear_error(done, "plan.yaml:7", "strategies.0.label", "cannot be used as a file name")
    assert not list(workdir.parent.rglob("escaped*"))
    assert not (workdir / "out").exists()


def test_task_name_dot_dot_is_refused(workdir, tiny_model_dir):
    text = plan_text(tiny_model_dir).replace("name: toy", "name: '..'")
    assert_clear_error(invoke("compare", write_plan(workdir, text)), "tasks.0.name", "cannot be used as a file name")


def test_result_store_refuses_a_run_id_outside_its_folder(tmp_path):
    store = ResultStore(tmp_path / "results")
    with pytest.raises(AdaptError, match="cannot be used as a file name"):
        store.path_for("../../outside")
    assert store.path_for("toy__lora__abc").parent == (tmp_path / "results" / "runs").resolve()


def test_report_refuses_a_predictions_file_outside_the_results_folder(workdir, tiny_model_dir):
    assert invoke("compare", write_plan(workdir, plan_text(tiny_model_dir))).exit_code == 0
    (run_file,) = (workdir / "out" / "runs").glob("*.json")
    predictions = workdir / "out" / json.loads(run_file.read_text())["predictions_file"]
    (workdir / "elsewhere.jsonl").write_text(predictions.read_text())
    run_file.write_text(run_file.read_text().replace(str(predictions.relative_to(workdir / "out")), "../elsewhere.jsonl"))
    assert_clear_error(invoke("report", workdir / "out"), "elsewhere.jsonl", "would leave the folder")


# --- 2. unbounded inputs ---------------------------------------------------------------------------------


def test_oversized_field_is_a_clear_error_in_data_check(workdir):
    write_jsonl(workdir / "big.jsonl", [ROWS[0], {"text": "x" * 200_000, "label": "positive"}])
    done = invoke("data", "check", workdir / "big.jsonl", "--tokenizer", "none")
    assert_clear_error(done, "big.jsonl:2", "field 'text'", "200,000 characters")


def test_oversized_field_stops_compare_before_any_run(workdir, tiny_model_dir):
    write_jsonl(workdir / "train.jsonl", [*ROWS[:11], {"text": "y" * 150_000, "label": "negative"}])
    done = invoke("compare", write_plan(workdir, plan_text(tiny_model_dir)))
    assert_clear_error(done, "train.jsonl:12", "field 'text'")
    assert not (workdir / "out" / "runs").exists()


def test_prompt_longer_than_the_context_is_truncated_and_counted(workdir, tiny_model_dir):
    long_review = "the movie was great and the acting was wonderful " * 120  # ~1,000 tokens; the tiny model holds 512
    write_jsonl(workdir / "eval.jsonl", [*ROWS[12:15], {"text": long_review, "label": "positive"}])
    done = invoke("compare", write_plan(workdir, plan_text(tiny_model_dir)))
    assert done.exit_code == 0, done.output
    (result,) = ResultStore(workdir / "out").all()
    assert result.metrics["truncated_prompts"] == 1
    predictions = [json.loads(line) for line in (workdir / "out" / result.predictions_file).read_text().splitlines()]
    assert [row.get("prompt_truncated", False) for row in predictions] == [False, False, False, True]
    assert max(row["prompt_tokens"] for row in predictions) < 512
    assert invoke("report", workdir / "out").exit_code == 0
    assert "zero_shot: 1 of 4" in (workdir / "out" / "report.md").read_text()


# --- 3. honest exit codes, pre-flight ---------------------------------------------------------------------


def test_compare_exits_1_when_runs_failed(workdir, tiny_model_dir, monkeypatch):
    hook_runs(workdir, monkeypatch, module="runners.zero_shot", name="run", at_call=1,
              action='raise RuntimeError("simulated failure")')
    done = invoke("compare", write_plan(workdir, plan_text(tiny_model_dir)))
    assert done.exit_code == 1, done.output
    (result,) = ResultStore(workdir / "out").all()
    assert result.status is RunStatus.failed and "simulated failure" in result.error


def test_bad_eval_data_is_found_before_any_run(workdir, tiny_model_dir):
    (workdir / "eval.jsonl").write_text(json.dumps(ROWS[12]) + "\n" + json.dumps(ROWS[13]) + "\n{\"text\": 5}\n")
    done = invoke("compare", write_plan(workdir, plan_text(tiny_model_dir)))
    assert_clear_error(done, "eval.jsonl:3", "field 'text'")
    assert not (workdir / "out" / "runs").exists()


def test_unknown_model_fails_at_once_offline(workdir, tiny_model_dir):
    text = plan_text(tiny_model_dir).replace(f"model: {tiny_model_dir}", "model: no-such-org/no-such-model")
    started = time.perf_counter()
    done = invoke("compare", write_plan(workdir, text))
    assert_clear_error(done, "no-such-org/no-such-model", "not in the Hugging Face cache", "offline")
    assert time.perf_counter() - started < 10
    assert not (workdir / "out").exists()


def test_unknown_model_fails_at_once_when_the_hub_is_unreachable(workdir, tiny_model_dir, monkeypatch):
    import socket

    from huggingface_hub import constants

    def unreachable(*args, **kwargs):
        raise OSError("Name or service not known")

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(socket, "create_connection", unreachable)
    text = plan_text(tiny_model_dir).replace(f"model: {tiny_model_dir}", "model: no-such-org/no-such-model")
    assert_clear_error(invoke("compare", write_plan(workdir, text)), "unreachable", "Name or service not known")


# --- 4. no tracebacks -------------------------------------------------------------------------------------


def test_output_dir_that_is_a_file_is_a_clear_error(workdir, tiny_model_dir):
    (workdir / "taken").write_text("not a folder")
    done = invoke("compare", write_plan(workdir, plan_text(tiny_model_dir, output_dir="taken")))
    assert_clear_error(done, "taken", "is a file, not a folder", "output_dir")


def test_non_list_tasks_override_is_a_clear_error(workdir, tiny_model_dir):
    done = invoke("compare", write_plan(workdir, plan_text(tiny_model_dir)), "tasks=5")
    assert_clear_error(done, "field 'tasks'", "valid list")


def test_report_draws_an_interval_that_excludes_its_point(tmp_path):
    import pandas as pd

    from reports import plots

    frame = pd.DataFrame([{"status": "ok", "score": 0.9, "score_low": 0.5, "score_high": 0.8, "cost_usd": 1.0,
                           "label": "lora", "primary_metric": "accuracy", "task": "toy"}])
    png = plots.accuracy_vs_cost(frame, {"lora": "#1f77b4"})
    assert png is not None and png.startswith(b"\x89PNG")


def test_unexpected_error_is_one_line_and_a_saved_traceback(workdir, tiny_model_dir, monkeypatch):
    import runners.compare

    def bug(**kwargs):
        return 1 / 0

    monkeypatch.setattr(runners.compare, "compare_command", bug)
    done = invoke("compare", write_plan(workdir, plan_text(tiny_model_dir)))
    assert done.exit_code == 3, done.output
    assert "Traceback" not in done.output and "ZeroDivisionError: division by zero" in done.output
    saved = Path(done.output.split("traceback saved to")[1].split()[0])
    assert "Traceback" in saved.read_text() and "1 / 0" in saved.read_text()


# --- 5. silently wrong results -----------------------------------------------------------------------------


def test_eval_label_absent_from_train_is_an_error(workdir, tiny_model_dir):
    write_jsonl(workdir / "eval.jsonl", [*ROWS[12:15], {"text": "so so", "label": "neutral"}])
    done = invoke("compare", write_plan(workdir, plan_text(tiny_model_dir)))
    assert_clear_error(done, "eval.jsonl:4", "field 'label'", "'neutral'", "train file's labels")


def test_eval_label_outside_explicit_labels_is_an_error(workdir, tiny_model_dir):
    write_jsonl(workdir / "eval.jsonl", [*ROWS[12:15], {"text": "so so", "label": "neutral"}])
    text = plan_text(tiny_model_dir, task_extra=", labels: [negative, positive]")
    assert_clear_error(invoke("compare", write_plan(workdir, text)), "eval.jsonl:4", "plan's `labels:`")


def test_explicit_labels_accept_an_eval_label_train_lacks(workdir, tiny_model_dir):
    write_jsonl(workdir / "eval.jsonl", [*ROWS[12:15], {"text": "so so", "label": "neutral"}])
    text = plan_text(tiny_model_dir, task_extra=", labels: [negative, neutral, positive]")
    assert invoke("compare", write_plan(workdir, text), "--dry-run").exit_code == 0


def test_data_check_eval_warns_on_labels_train_lacks(workdir):
    write_jsonl(workdir / "eval.jsonl", [*ROWS[12:15], {"text": "so so", "label": "neutral"}])
    done = invoke("data", "check", workdir / "train.jsonl", "--eval", workdir / "eval.jsonl", "--tokenizer", "none")
    assert done.exit_code == 0, done.output
    assert "eval.jsonl:4: field 'label': 'neutral'" in done.output
    assert "valid, with 1 warning(s)" in done.output


@pytest.mark.parametrize("override, field", [("strategies.lora.r=true", "strategies.0.r"),
                                             ("seed='3'", "seed"),
                                             ("strategies.lora.packing=1", "strategies.0.packing")])
def test_no_silent_type_coercion(workdir, tiny_model_dir, override, field):
    text = plan_text(tiny_model_dir, strategies="  - {strategy: lora, r: 8}\n")
    assert_clear_error(invoke("compare", write_plan(workdir, text), override, "--dry-run"), f"field '{field}'")


# --- 6. one writer per results folder ---------------------------------------------------------------------

HOLD_LOCK = "from base.lock import results_lock; import sys, time\nwith results_lock(sys.argv[1]):\n    print('held', flush=True); time.sleep(120)\n"


def test_second_compare_names_the_lock_holder_and_a_dead_ones_lock_is_taken_over(workdir, tiny_model_dir):
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(workdir / "out")], cwd=REPO,
                              env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        plan = write_plan(workdir, plan_text(tiny_model_dir))
        busy = invoke("compare", plan)
        assert_clear_error(busy, "in use by another `adapt compare`", f"pid {holder.pid}")
        assert not (workdir / "out" / "runs").exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    done = invoke("compare", plan)
    assert done.exit_code == 0, done.output
    assert f"took over the lock of a compare that ended without releasing it (pid {holder.pid}" in done.output
    assert len(ResultStore(workdir / "out").all()) == 1


def test_checkpoint_staging_folders_are_unique(tmp_path, monkeypatch):
    import torch

    from runners import training

    staged = []
    real_replace = os.replace
    monkeypatch.setattr(training.os, "replace", lambda src, dst: staged.append(Path(src).name) or real_replace(src, dst))
    accelerator = training.make_accelerator("cpu")
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.AdamW(model.parameters())
    accelerator.prepare(model, optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0))
    for _ in range(2):
        training.save_checkpoint(accelerator, tmp_path, 1, training.TrainStats(), {})
    folders = [name for name in staged if name.startswith(".epoch-1.")]
    assert len(folders) == 2 and len(set(folders)) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch-1", "latest.json"]  # no staging left behind


# --- 7. untrusted checkpoints, file modes ---------------------------------------------------------------------


class _RunsCode:
    """A pickle that creates a file when loaded: what a hostile results folder could hold."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_resume_never_runs_code_from_a_checkpoint(tmp_path, tiny_model, tiny_tokenizer):
    from base.plan import LoraSettings
    from runners.training import CHECKPOINT_MARKER, train

    settings = LoraSettings(epochs=2.0, batch_size=2, max_length=32, eval_fraction=0.0)
    pairs = [("the movie was great", " positive"), ("awful boring film", " negative")] * 2
    checkpoints = tmp_path / "checkpoints"
    train(tiny_model, tiny_tokenizer, pairs, settings, checkpoint_dir=checkpoints, progress=lambda n, **_: None)
    folder = checkpoints / json.loads((checkpoints / CHECKPOINT_MARKER).read_text())["folder"]
    marker = tmp_path / "code-ran"
    pickled = sorted(folder.glob("*.bin")) + sorted(folder.glob("*.pkl"))  # accelerate's optimizer, schedule, RNG
    assert any(p.name.startswith("optimizer") for p in pickled)
    for path in pickled:
        with open(path, "wb") as handle:
            pickle.dump({"state": _RunsCode(marker)}, handle)
    with pytest.raises(AdaptError, match="refusing to resume"):
        train(tiny_model, tiny_tokenizer, pairs, settings, checkpoint_dir=checkpoints, progress=lambda n, **_: None)
    assert not marker.exists()


def test_results_and_artifacts_get_umask_modes(workdir, tiny_model_dir):
    old = os.umask(0o022)
    try:
        strategies = "  - {strategy: lora, max_steps: 1, batch_size: 4, max_length: 32, max_new_tokens: 2}\n"
        done = invoke("compare", write_plan(workdir, plan_text(tiny_model_dir, strategies=strategies)))
    finally:
        os.umask(old)
    assert done.exit_code == 0, done.output
    out = workdir / "out"
    (result,) = ResultStore(out).all()
    for path in [ResultStore(out).path_for(result.run_id), out / "compare.json", out / result.predictions_file,
                 out / result.artifact_dir / "model" / "adapter_config.json"]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path
    assert stat.S_IMODE((out / result.artifact_dir / "model").stat().st_mode) == 0o755


# --- kill -9 mid-write, then resume -----------------------------------------------------------------------

# Each run goes in a process of its own (runners.launch), which gets compare's import path: a sitecustomize.py in a
# folder on that path wraps one function there, so the run's process fails, or SIGKILLs itself, at that point.
HOOK = textwrap.dedent("""\
    import os, signal
    import {module} as target
    real = target.{name}
    calls = []
    def hooked(*args, **kwargs):
        calls.append(1)
        if len(calls) == {at_call}:
            {action}
        return real(*args, **kwargs)
    target.{name} = hooked
""")
KILL = "os.kill(os.getpid(), signal.SIGKILL)"


def hook_runs(workdir: Path, monkeypatch, *, module: str, name: str, at_call: int, action: str) -> Path:
    """Wrap `module.name` in every run process started from now on; delete the returned file to stop."""
    folder = workdir / "hook"
    folder.mkdir(exist_ok=True)
    hook = folder / "sitecustomize.py"
    hook.write_text(HOOK.format(module=module, name=name, at_call=at_call, action=action))
    monkeypatch.syspath_prepend(str(folder))
    return hook


TRAINING = ("  - {strategy: zero_shot, max_new_tokens: 2}\n"
            "  - {strategy: lora, epochs: 2, batch_size: 4, max_length: 32, max_new_tokens: 2, eval_fraction: 0.0}\n")


def test_kill_during_checkpoint_write_loses_nothing_and_resumes(workdir, tiny_model_dir, monkeypatch):
    plan = write_plan(workdir, plan_text(tiny_model_dir, strategies=TRAINING))
    # the second checkpoint's weights are written, the rest is not: the run's process dies inside the write
    hook = hook_runs(workdir, monkeypatch, module="safetensors.torch", name="save_file", at_call=2,
                     action=f"real(*args, **kwargs); {KILL}")
    done = invoke("compare", plan)
    assert done.exit_code == 1, done.output
    store = ResultStore(workdir / "out")
    runs = {r.label: r for r in store.all()}
    assert runs["zero_shot"].status is RunStatus.ok
    assert runs["lora"].status is RunStatus.failed and "SIGKILL" in runs["lora"].error
    (marker,) = (workdir / "out" / "artifacts").rglob("latest.json")
    assert json.loads(marker.read_text())["epoch"] == 1
    assert list(marker.parent.glob(".epoch-2.*.staging"))  # the half-written one

    hook.unlink()
    done = invoke("compare", plan)
    assert done.exit_code == 0, done.output
    assert "1 finished run(s) found" in done.output
    rerun = {r.label: r for r in store.all()}
    assert rerun["zero_shot"].finished_at == runs["zero_shot"].finished_at
    assert rerun["lora"].status is RunStatus.ok and rerun["lora"].cost["resumed_from_epoch"] == 1
    assert rerun["lora"].cost["train_steps"] == 6
    assert not list(marker.parent.glob(".epoch-*.staging"))


def test_kill_during_forgetting_loses_nothing_and_resumes(workdir, tiny_model_dir, monkeypatch):
    plan = write_plan(workdir, plan_text(tiny_model_dir, strategies=TRAINING, forgetting=True))
    hook = hook_runs(workdir, monkeypatch, module="runners.forgetting", name="check_forgetting", at_call=1, action=KILL)
    done = invoke("compare", plan)
    assert done.exit_code == 1, done.output
    store = ResultStore(workdir / "out")
    runs = {r.label: r for r in store.all()}
    assert runs["zero_shot"].status is RunStatus.ok and runs["lora"].status is RunStatus.failed

    hook.write_text(HOOK.format(module="runners.forgetting", name="check_forgetting", at_call=1,
                                action='return {"retained": 0.97}'))
    done = invoke("compare", plan)
    assert done.exit_code == 0, done.output
    rerun = {r.label: r for r in store.all()}
    assert rerun["zero_shot"].finished_at == runs["zero_shot"].finished_at
    assert rerun["lora"].status is RunStatus.ok and rerun["lora"].forgetting == {"retained": 0.97}

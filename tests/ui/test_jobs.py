"""Background jobs: compare's log read back into per-run progress and a loss curve; a job runs in its own process
group under a watcher that records its exit code, and cancel is Ctrl-C for that group."""
from __future__ import annotations

import sys
import time

from ui import jobs
from ui.workspace import Workspace

LOG = """\
estimated wall time: 33 s for 2 run(s) (a guide: the estimate aims to be within 2x)
… run 1/2: toy · zero_shot
  · toy · zero_shot: scoring (4 steps)
✓ toy · zero_shot: accuracy 0.500 (rank) · format 0% · train — s · 6 s total
… run 2/2: toy · lora-r4
  · training (3 steps)
  ⋯ training: step 1/3 · loss 5.918 · 1 s elapsed · ETA 2 s
  ⋯ training: step 2/3 · loss 5.5e-01 · 2 s elapsed · ETA 1 s
  ⋯ toy · lora-r4: scoring: step 2/4 · 1 s elapsed
"""


def test_progress_and_loss_are_read_from_compares_log():
    assert jobs.runs_progress(LOG) == [
        {"run": "1/2", "task": "toy", "strategy": "zero_shot", "state": "ok — accuracy 0.500 (rank) · format 0% · train — s · 6 s total"},
        {"run": "2/2", "task": "toy", "strategy": "lora-r4", "state": "running"}]
    assert jobs.loss_points(LOG) == [{"run": "lora-r4", "step": 1, "loss": 5.918}, {"run": "lora-r4", "step": 2, "loss": 0.55}]
    failed = LOG + "✗ toy · lora-r4: failed — process killed by SIGKILL\n"
    assert jobs.runs_progress(failed)[1]["state"] == "failed — process killed by SIGKILL"


def wait_for(condition, seconds: float = 90) -> None:  # generous: a loaded 2-core machine starts Python slowly
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_a_job_records_its_exit_and_cancel_is_ctrl_c(tmp_path):
    """Also when the board was started with Ctrl-C ignored (SIG_IGN is inherited): cancel must still reach compare."""
    import signal

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        _launch_and_cancel(tmp_path)
    finally:
        signal.signal(signal.SIGINT, previous)


def _launch_and_cancel(tmp_path):
    workspace = Workspace.at(tmp_path)
    sleeper = [sys.executable, "-u", "-c", "import time\ntry:\n    print('ready')\n    time.sleep(60)\n"
               "except KeyboardInterrupt:\n    print('interrupted: finished work is kept')\n    raise SystemExit(130)"]
    folder = workspace.state_dir / "jobs" / "j1"
    folder.mkdir(parents=True)
    job = jobs.launch(folder, sleeper, cwd=workspace.root, command="sleeper", output_dir="results")
    wait_for(lambda: "ready" in job.log())
    assert job.running and job.state == "running"
    assert [found.id for found in jobs.all_jobs(workspace)] == ["j1"]  # what a reloaded page finds
    jobs.cancel(job)
    wait_for(lambda: job.exit_code is not None)
    assert job.exit_code == 130 and job.state == "cancelled: finished runs are kept"
    assert "interrupted" in job.log() and not job.running


def test_a_finished_job_keeps_its_exit_code(tmp_path):
    folder = tmp_path / "j2"
    folder.mkdir()
    job = jobs.launch(folder, [sys.executable, "-c", "raise SystemExit(2)"], cwd=tmp_path, command="bad plan")
    wait_for(lambda: job.exit_code is not None)
    assert job.exit_code == 2 and job.state.startswith("refused: bad input")

"""Background `adapt compare` jobs started from the board: the CLI itself, in a process group of its own, so a job
outlives the page that started it (and the board too) and writes the same results folder the terminal would.

Each job is a folder under WORKSPACE/.adapt-ui/jobs/<id>/: job.json (command, plan, results folder, pid, start
time), output.log (everything compare prints) and exit_code, written by a small watcher process (`python -m
ui.jobs JOB_DIR -- COMMAND...`) that waits for compare — so the exit code is kept even when the board is gone.
Cancel sends SIGINT to the group: compare stops the running run, keeps every finished one and exits 130, exactly
as Ctrl-C at a terminal does.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from base import paths
from base.io import write_json_atomic, write_text_atomic
from base.progress import HEARTBEAT_ENV
from ui.workspace import Workspace

JOB_FILE, LOG_FILE, EXIT_FILE = "job.json", "output.log", "exit_code"
HEARTBEAT_S = 5  # seconds between a running job's progress lines (base.progress); finished runs' curves are exact
# compare's log lines (runners.compare, base.progress.LogDisplay) that the Run page reads back
RUN_STARTED = re.compile(r"… run (\d+)/(\d+): (\S+) · (\S+)")
RUN_FINISHED = re.compile(r"([✓✗]) (\S+) · (\S+): (.*)")
STEP_LOSS = re.compile(r"step (\d+)(?:/\d+)? · loss ([0-9.]+(?:e-?\d+)?)")


@dataclass
class Job:
    folder: Path
    record: dict[str, Any]

    @property
    def id(self) -> str:
        return self.folder.name

    @property
    def exit_code(self) -> int | None:
        text = (self.folder / EXIT_FILE).read_text().strip() if (self.folder / EXIT_FILE).exists() else ""
        return int(text) if text else None

    @property
    def running(self) -> bool:
        return self.exit_code is None and _alive(self.record["pid"])

    @property
    def state(self) -> str:
        code = self.exit_code
        if code is None:
            return "running" if _alive(self.record["pid"]) else "ended (no exit code: the watcher was killed)"
        return {0: "finished: every run ok", 1: "finished: some runs failed", 2: "refused: bad input (see log)",
                130: "cancelled: finished runs are kept"}.get(code, f"ended with exit code {code}")

    def log(self) -> str:
        file = self.folder / LOG_FILE
        return file.read_text(encoding="utf-8", errors="replace") if file.exists() else ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def start(workspace: Workspace, plan_file: Path, output_dir: Path) -> Job:
    """Start `adapt compare PLAN -o OUTPUT` in the background; both paths must already be checked as inside."""
    jobs = workspace.state_dir / "jobs"
    folder = jobs / time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    suffix = 0
    while folder.exists():
        suffix += 1
        folder = jobs / f"{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{suffix}"
    folder.mkdir(parents=True)
    argv = [sys.executable, "-m", "cli.app", "compare", str(plan_file), "--output", str(output_dir)]
    return launch(folder, argv, cwd=workspace.root, plan=workspace.relative(plan_file),
                  output_dir=workspace.relative(output_dir),
                  command=shlex.join(["adapt", "compare", workspace.relative(plan_file), "--output", workspace.relative(output_dir)]))


def launch(folder: Path, argv: list[str], cwd: Path, **record: Any) -> Job:
    """Start `argv` under a watcher in a new session (its own process group), recorded in `folder`."""
    # Heartbeats every few seconds feed the live loss curve; a wide console keeps each log line on one line.
    env = {**os.environ, HEARTBEAT_ENV: os.environ.get(HEARTBEAT_ENV, str(HEARTBEAT_S)), "COLUMNS": "400",
           "PYTHONPATH": os.pathsep.join(dict.fromkeys([str(paths.REPO_ROOT), *filter(None, sys.path)])),
           "PYTHONUNBUFFERED": "1"}
    watcher = subprocess.Popen([sys.executable, "-m", "ui.jobs", str(folder), "--", *argv], cwd=cwd,
                               env=env, start_new_session=True, stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    full = {"pid": watcher.pid, **record, "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    write_json_atomic(folder / JOB_FILE, full)
    return Job(folder, full)


def all_jobs(workspace: Workspace) -> list[Job]:
    """Every job of this workspace, newest first."""
    jobs = workspace.state_dir / "jobs"
    found = [Job(folder, json.loads((folder / JOB_FILE).read_text(encoding="utf-8")))
             for folder in jobs.iterdir() if (folder / JOB_FILE).is_file()] if jobs.is_dir() else []
    return sorted(found, key=lambda job: job.id, reverse=True)


def find(workspace: Workspace, job_id: str) -> Job | None:
    return next((job for job in all_jobs(workspace) if job.id == job_id), None)


def cancel(job: Job) -> None:
    """Ctrl-C for the job's whole process group (compare and the run it is in); the watcher records the exit."""
    if job.running:
        os.killpg(job.record["pid"], signal.SIGINT)


def runs_progress(log: str) -> list[dict[str, str]]:
    """Per-run state read from compare's log: [{run, task, strategy, state}], in the order they started."""
    runs: dict[tuple[str, str], dict[str, str]] = {}
    for line in log.splitlines():
        if match := RUN_STARTED.search(line):
            number, total, task, strategy = match.groups()
            runs[(task, strategy)] = {"run": f"{number}/{total}", "task": task, "strategy": strategy, "state": "running"}
        elif (match := RUN_FINISHED.search(line)) and (match.group(2), match.group(3)) in runs:
            mark, task, strategy, detail = match.groups()
            runs[(task, strategy)]["state"] = "ok — " + detail if mark == "✓" else detail  # compare says "failed — why"
    return list(runs.values())


def loss_points(log: str) -> list[dict[str, Any]]:
    """(run, step, loss) for every heartbeat that carried a training loss, labelled by the run it belongs to."""
    points = []
    current = ""
    for line in log.splitlines():
        if match := RUN_STARTED.search(line):
            current = match.group(4)
        elif "training" in line and (match := STEP_LOSS.search(line)):
            points.append({"run": current, "step": int(match.group(1)), "loss": float(match.group(2))})
    return points


def watch(folder: Path, command: list[str]) -> int:
    """The watcher: run compare with its output in the job's log, then record its exit code."""
    with open(folder / LOG_FILE, "w", encoding="utf-8") as log:
        # Ctrl-C must reach compare even when whoever started the board ignores SIGINT (a child inherits SIG_IGN)
        child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a cancel is for compare; the watcher stays to record it
        code = child.wait()
    write_text_atomic(folder / EXIT_FILE, f"{128 - code if code < 0 else code}\n")
    return code


if __name__ == "__main__":  # python -m ui.jobs JOB_DIR -- COMMAND...
    watch(Path(sys.argv[1]), sys.argv[sys.argv.index("--") + 1:])

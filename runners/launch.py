"""Each run of `adapt compare` in a process of its own, started the way its plan's `launch:` section says.

A crash, an out-of-memory kill or a Ctrl-C of one run ends that process only: the parent records the run as failed
(exit signal or code, and the tail of what it wrote to stderr) and goes on; peak memory is the run's own process.
Under a multi-process launch, training runs and the prompting runs that only score (zero-shot, few-shot) start under
`accelerate launch` (GPUs: DDP, FSDP or DeepSpeed from the plan and its accelerate config) or torchrun (CPU: gloo):
each process trains its share, then scores its share of the eval items and of the forgetting checks
(runners.shards); everything else, and any run with num_processes 1, runs as a plain `python -m runners.launch`.

Child side: `python -m runners.launch SPEC.json RESULT.json` runs one RunSpec and writes its RunResult as JSON
(the main process only); any exception becomes a failed result, written the same way. The spec file also carries
the strategy's registry entry, so a strategy registered at run time (not built in) is known to the child too; the
child gets the parent's import path for the same reason.
"""
from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from contextlib import nullcontext
from collections import deque
from pathlib import Path
from typing import Any, Callable

from base import paths, registry
from base.errors import AdaptError
from base.io import write_json_atomic
from base.plan import LaunchSettings, RunSpec
from base.quiet import quiet_third_party
from base.results import RunResult, RunStatus, now_iso

SPEC_FILE = "spec.json"
RESULT_FILE = "result.json"
LOG_FILE = "output.log"  # everything the run's processes wrote to stdout and stderr
TAIL_LINES = 20
# distributed: the accelerate launch flag, and the shipped config used when the plan names none
ACCELERATE_MODES = {"ddp": ("--multi_gpu", None), "fsdp": ("--use_fsdp", "8gpu-fsdp.yaml"),
                    "deepspeed": ("--use_deepspeed", "8gpu-zero3.yaml")}
PASSED_THROUGH = ("num_processes", "num_machines", "machine_rank", "main_process_ip", "main_process_port", "mixed_precision")


# --- parent side --------------------------------------------------------------------------------------------


# Prompting runs whose whole work is scoring go data-parallel too. RAG stays one process (each would build, and cache
# into the same folder, the same index), and so does feature_based (one classifier fitted on every feature).
SCORING_ONLY_ESTIMATES = ("prompt", "demos")


def is_distributed(spec: RunSpec) -> bool:
    """Several processes for this run: a training or scoring-only strategy under a multi-process launch."""
    entry = registry.get(spec.strategy.strategy)
    return spec.launch.multi_process and (entry.trains or entry.estimate in SCORING_ONLY_ESTIMATES)


def check_launchable(specs: list[RunSpec], source: str = "plan") -> None:
    """Refuse, before anything runs, a launch that would silently run as something else: accelerate shards with
    FSDP/DeepSpeed on GPUs only and runs CPU processes as DDP over gloo."""
    for spec in specs:
        if is_distributed(spec) and spec.device == "cpu" and spec.launch.distributed in ("fsdp", "deepspeed"):
            raise AdaptError(f"distributed: {spec.launch.distributed} needs GPUs (on CPU, accelerate runs the processes "
                             "as DDP over gloo)", file=source, field="launch.distributed",
                             hint="use distributed: ddp on CPU, or run on CUDA devices")


def command(spec: RunSpec, spec_file: Path, result_file: Path) -> list[str]:
    """The command line that runs `spec`: plain python, torchrun (CPU) or accelerate launch (GPU)."""
    entry = ["runners.launch", str(spec_file), str(result_file)]
    if not is_distributed(spec):
        return [sys.executable, "-m", *entry]
    launch = spec.launch
    if spec.device == "cpu":
        return [sys.executable, "-m", "torch.distributed.run", *torchrun_options(launch), "-m", *entry]
    return [sys.executable, "-m", "accelerate.commands.launch", *accelerate_options(launch), "--module", *entry]


def torchrun_options(launch: LaunchSettings) -> list[str]:
    """CPU processes (gloo): accelerate launch runs CPU jobs through mpirun only, torchrun needs nothing installed."""
    per_machine = f"--nproc_per_node={launch.num_processes // launch.num_machines}"
    if launch.num_machines == 1:
        return ["--standalone", per_machine]
    return [per_machine, f"--nnodes={launch.num_machines}", f"--node_rank={launch.machine_rank}",
            f"--master_addr={launch.main_process_ip}", f"--master_port={launch.main_process_port or 29500}"]


def accelerate_options(launch: LaunchSettings) -> list[str]:
    """`accelerate launch` options: the config file (the plan's, or the shipped default for FSDP/DeepSpeed), then
    every launch setting (the plan's, or read from that file), which accelerate lets override the file."""
    flag, default_config = ACCELERATE_MODES.get(launch.distributed, (None, None))
    config = launch.config_file or (paths.CONFIGS_DIR / "launch" / default_config if default_config else None)
    options = ["--config_file", str(config)] if config else []
    if flag:
        options.append(flag)
    for name in PASSED_THROUGH:
        value = getattr(launch, name)
        if value is not None:
            options += [f"--{name}", str(value)]
    if launch.main_process_port is None and launch.num_machines == 1:
        options += ["--main_process_port", str(free_port())]  # two compares on one machine must not collide
    return options


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_in_child(spec: RunSpec, on_line: Callable[[str], None] = lambda line: None) -> RunResult:
    """Run `spec` in its own process(es) and return its result; a process that dies without one is a failed run."""
    started = time.time()
    result_file = spec.run_dir / RESULT_FILE
    result_file.unlink(missing_ok=True)
    returncode, tail = launch_child(spec, on_line)
    if result_file.exists():
        return RunResult.from_json(_read_json(result_file))
    return failed_result(spec, exit_reason(returncode), tail, started)


def launch_child(spec: RunSpec, on_line: Callable[[str], None] = lambda line: None) -> tuple[int, str]:
    """Start the run's process(es) and wait: (exit code, the tail of their output).

    The output goes line by line to `on_line` and to the run's output.log (output.machine<rank>.log on the other
    machines of a multi-node launch). Ctrl-C reaches the child too (same process group); the child is then stopped
    before KeyboardInterrupt goes on up.
    """
    spec.run_dir.mkdir(parents=True, exist_ok=True)
    spec_file = spec.run_dir / SPEC_FILE
    write_json_atomic(spec_file, {"spec": spec.model_dump(mode="json"), "strategy": describe(spec.strategy.strategy)})
    import_path = [str(paths.REPO_ROOT), *(entry for entry in sys.path if entry)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(dict.fromkeys(import_path))}
    rank = spec.launch.machine_rank
    log_file = spec.run_dir / (LOG_FILE if rank == 0 else LOG_FILE.replace(".log", f".machine{rank}.log"))
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    with open(log_file, "w", encoding="utf-8") as log:
        child = subprocess.Popen(command(spec, spec_file, spec.run_dir / RESULT_FILE), stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, env=env, text=True, errors="replace", bufsize=1)
        reader = threading.Thread(target=_forward, args=(child.stdout, log, tail, on_line), daemon=True)
        reader.start()
        try:
            returncode = child.wait()
        finally:
            _stop(child)
            reader.join(timeout=5)
    return returncode, "".join(tail)


def _forward(stream: Any, log: Any, tail: deque, on_line: Callable[[str], None]) -> None:
    for line in stream:
        log.write(line)
        log.flush()
        tail.append(line)
        on_line(line.rstrip("\n"))


def _stop(child: subprocess.Popen) -> None:
    """Make sure the child is gone (it is, unless the parent was interrupted while waiting)."""
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def exit_reason(returncode: int) -> str:
    """Why a run's process ended without a result, in words."""
    if returncode < 0:
        name = signal.Signals(-returncode).name
        oom = " (the kernel's out-of-memory killer sends SIGKILL)" if name == "SIGKILL" else ""
        return f"process killed by {name}{oom}"
    return f"process exited with code {returncode} without writing a result"


def _read_json(path: Path) -> Any:
    import json

    return json.loads(path.read_text(encoding="utf-8"))


def failed_result(spec: RunSpec, message: str, details: str, started: float) -> RunResult:
    """A failed run keeps its config and error so the report can list it; the details (a traceback or the tail of
    the process's output) go beside it in error.txt."""
    spec.run_dir.mkdir(parents=True, exist_ok=True)
    (spec.run_dir / "error.txt").write_text(f"{message}\n\n{details}", encoding="utf-8")
    last = next((line.strip() for line in reversed(details.splitlines()) if line.strip()), "")
    error = message if not last or last in message else f"{message} — {last}"
    return RunResult(
        run_id=spec.run_id, task=spec.task.name, strategy=spec.strategy.strategy, label=spec.strategy.name,
        status=RunStatus.failed, config=spec.model_dump(mode="json"), config_hash=spec.config_hash,
        error=error.splitlines()[0][:500], seed=spec.seed, model=spec.model, hashes=dict(spec.data_hashes),
        started_at=time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(started)), finished_at=now_iso(),
        duration_s=round(time.time() - started, 3),
    )


def describe(name: str) -> dict[str, Any]:
    """A registry entry as JSON: its settings class by import name, everything else as is."""
    entry = registry.get(name)
    described = {field.name: getattr(entry, field.name) for field in dataclasses.fields(entry)}
    described["settings"] = f"{entry.settings.__module__}:{entry.settings.__qualname__}"
    described["needs"], described["task_types"] = list(entry.needs), list(entry.task_types)
    return described


def ensure_registered(described: dict[str, Any]) -> None:
    """Register a strategy the parent had and this process lacks (one registered at run time, not built in)."""
    if registry.known(described["name"]):
        return
    import importlib

    module, qualname = described["settings"].split(":")
    settings = importlib.import_module(module)
    for part in qualname.split("."):
        settings = getattr(settings, part)
    registry.register(registry.Strategy(**{**described, "settings": settings, "needs": tuple(described["needs"]),
                                           "task_types": tuple(described["task_types"])}))


# --- child side ---------------------------------------------------------------------------------------------


def execute(spec: RunSpec) -> RunResult | None:
    """Run one strategy in this process; any exception becomes a failed result. None on the non-main processes of
    a multi-process run (the main one reports)."""
    from runners import get_runner

    started = time.time()
    try:
        return get_runner(spec.strategy.strategy)(spec)
    except Exception as error:  # noqa: BLE001 - recorded, and the comparison goes on
        message = f"{type(error).__name__}: {error}".strip()
        if type(error).__name__ in ("OutOfMemoryError", "MemoryError"):
            message = f"out of memory: {message}"
        return failed_result(spec, message.splitlines()[0], "".join(traceback.format_exception(error)), started)


def add_forgetting(spec: RunSpec, result: RunResult | None, results_root: Path) -> None:
    """General-ability checks, base vs adapted, for runs that changed weights; a failure here keeps the run.

    Every process of a multi-process run takes part (each scores its share of the benchmark items,
    runners.forgetting); `result` is None on the processes that do not report, whose runner finished.
    """
    if not (spec.forgetting.enabled and registry.get(spec.strategy.strategy).changes_weights):
        return
    if result is not None and result.status is not RunStatus.ok:
        return
    adapted = spec.run_dir / "model"
    if not adapted.exists():
        if result is not None:
            result.forgetting = {"error": f"no saved model at {adapted}"}
        return
    from base.progress import note
    from runners.forgetting import check_forgetting

    note(f"{spec.task.name} · {spec.strategy.name}: forgetting checks ({', '.join(spec.forgetting.benchmarks)})")
    try:
        checked = check_forgetting(spec.model, adapted, spec.forgetting, device=process_device(spec.device),
                                   cache_dir=results_root / "base")
    except Exception as error:  # noqa: BLE001
        checked = {"error": f"{type(error).__name__}: {error}".splitlines()[0]}
    if result is not None:
        result.forgetting = checked


def process_device(device: str) -> str:
    """This process's own device: cuda:<local rank> under a multi-GPU launch (accelerate's PartialState says which)."""
    from runners import shards

    state = shards.processes()
    return str(state.device) if state is not None and device == "cuda" else device


def main(argv: list[str] | None = None) -> int:
    """Run the spec; the main process writes the result. Under a multi-process launch a failed run exits non-zero on
    every process that saw it, so the launcher stops the others instead of leaving them waiting in a collective."""
    spec_file, result_file = argv if argv is not None else sys.argv[1:]
    launched = _read_json(Path(spec_file))
    ensure_registered(launched["strategy"])
    spec = RunSpec.model_validate(launched["spec"])
    quiet_third_party()
    main_process = int(os.environ.get("RANK", "0")) == 0
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # join the process group now: a prompting runner makes no Accelerator
        from accelerate import PartialState

        PartialState(cpu=spec.device == "cpu")
    from rich.console import Console

    from base.progress import LogDisplay, showing

    # the main process's phases and heartbeats as plain lines on stdout, which the parent forwards to its display
    display = LogDisplay(Console(file=sys.stdout, soft_wrap=True)) if main_process else nullcontext()
    with display, showing(display if main_process else None):
        result = execute(spec)
        add_forgetting(spec, result, spec.run_dir.parent.parent)
    end_process_group()
    if result is None:
        return 0
    if main_process:
        write_json_atomic(Path(result_file), result.to_json())
    elif result.status is RunStatus.failed:  # only the main process records; the others' errors go to output.log
        print(f"process {os.environ.get('RANK')}: {result.error}", file=sys.stderr)
    return 1 if result.status is RunStatus.failed and int(os.environ.get("WORLD_SIZE", "1")) > 1 else 0


def end_process_group() -> None:
    """A multi-process run keeps its process group from training through scoring and forgetting checks; it ends
    here (accelerate's end_training does the same)."""
    if "torch" not in sys.modules:
        return
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())

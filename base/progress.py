"""Progress reporting that runners use without knowing who displays it.

`adapt compare` installs a display with `showing(display)`: a rich Progress on a terminal, a `LogDisplay`
elsewhere (a CI log, `make demo | tee`), which prints one line per phase and a heartbeat line at least every
`HEARTBEAT_S` seconds (step/total, loss, ETA) — rich's own bars print nothing to a non-terminal until they end.
A run's own process (runners.launch) shows its progress the same way on its stdout, which compare forwards;
`ADAPT_HEARTBEAT_S` in the environment sets the interval for every process (tests set it to 0).
Runners open bars with `bar(description, total)` and may pass fields with each advance (`advance(1, loss=0.7)`).
Outside compare (tests, library use) bars are silent no-ops.
"""
from __future__ import annotations

import contextvars
import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

HEARTBEAT_S = 30.0  # the longest a log goes without a line while work is under way
HEARTBEAT_ENV = "ADAPT_HEARTBEAT_S"

_display: contextvars.ContextVar[Any] = contextvars.ContextVar("adaptlab_progress", default=None)


@contextmanager
def showing(progress: Any) -> Iterator[None]:
    """Route every bar opened inside this block to a display (rich.progress.Progress or LogDisplay)."""
    token = _display.set(progress)
    try:
        yield
    finally:
        _display.reset(token)


@contextmanager
def bar(description: str, total: float | None) -> Iterator[Callable[..., None]]:
    """A bar for one stage of work; yields `advance(n=1, description=None, **fields)` (a new description relabels
    the bar; fields such as `loss=` are shown beside it). The bar is removed when the stage ends."""
    progress = _display.get()
    if progress is None:
        yield lambda n=1, description=None, **fields: None
        return
    task_id = progress.add_task(description, total=total)
    try:
        yield lambda n=1, description=None, **fields: progress.update(task_id, advance=n, description=description, **fields)
    finally:
        progress.remove_task(task_id)


def note(message: str) -> None:
    """A one-line status message above the bars (or nothing when no display is installed)."""
    progress = _display.get()
    if progress is not None:
        progress.console.print(f"[dim]{message}[/]")


@dataclass
class _Stage:
    description: str
    total: float | None
    started: float = field(default_factory=time.monotonic)
    completed: float = 0.0
    fields: dict[str, Any] = field(default_factory=dict)


def duration(seconds: float) -> str:
    """`42 s`, `3 min 05 s`, `1 h 02 min`: short enough for a log line."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class LogDisplay:
    """The display for a non-terminal: the subset of rich.progress.Progress that `bar` and `note` use, printing
    plain lines — one when a phase starts and ends, and a heartbeat while one runs. A background thread keeps the
    heartbeat going through steps longer than the interval (model loading, one slow forgetting benchmark)."""

    def __init__(self, console: Any, interval: float | None = None) -> None:
        self.console = console
        self.interval = float(os.environ.get(HEARTBEAT_ENV, HEARTBEAT_S)) if interval is None else interval
        self._stages: dict[int, _Stage] = {}
        self._next_id = 0
        self._lock = threading.Lock()
        self._last_line = self._idle_since = time.monotonic()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    def __enter__(self) -> "LogDisplay":
        self._ticker = threading.Thread(target=self._tick, name="adaptlab-heartbeat", daemon=True)
        self._ticker.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()

    def add_task(self, description: str, total: float | None = None, **fields: Any) -> int:
        with self._lock:
            task_id, self._next_id = self._next_id, self._next_id + 1
            self._stages[task_id] = _Stage(description, total, fields=dict(fields))
        self._print(f"  · {description}" + (f" ({total:g} steps)" if total else ""))
        return task_id

    def update(self, task_id: int, *, advance: float = 0, description: str | None = None, **fields: Any) -> None:
        with self._lock:
            stage = self._stages[task_id]
            stage.completed += advance
            stage.description = description or stage.description
            stage.fields.update(fields)
        if time.monotonic() - self._last_line >= self.interval:
            self._heartbeat()

    def remove_task(self, task_id: int) -> None:
        with self._lock:
            stage = self._stages.pop(task_id)
            if not self._stages:
                self._idle_since = time.monotonic()
        self._print(f"  · {stage.description}: done in {duration(time.monotonic() - stage.started)}")

    def status(self, stage: _Stage) -> str:
        """`training: step 12/40 · loss 1.234 · 35 s elapsed · ETA 1 min 30 s`."""
        elapsed = time.monotonic() - stage.started
        parts = [f"step {stage.completed:g}/{stage.total:g}" if stage.total else f"step {stage.completed:g}"]
        if isinstance(stage.fields.get("loss"), (int, float)):
            parts.append(f"loss {stage.fields['loss']:.3f}")
        parts.append(f"{duration(elapsed)} elapsed")
        if stage.total and stage.completed:
            parts.append(f"ETA {duration(elapsed / stage.completed * (stage.total - stage.completed))}")
        return f"{stage.description}: " + " · ".join(parts)

    def _heartbeat(self) -> None:
        with self._lock:
            lines = [self.status(stage) for stage in self._stages.values()]
        for line in lines or [f"still working: {duration(time.monotonic() - self._idle_since)} since the last phase ended"]:
            self._print(f"  ⋯ {line}")

    def _tick(self) -> None:
        while not self._stop.wait(min(max(self.interval, 0.5), 5.0)):
            if time.monotonic() - self._last_line >= self.interval:
                self._heartbeat()

    def echo(self, line: str) -> None:
        """A line from elsewhere (a run's own process): printed as is, and it counts as a sign of life."""
        self._print(line)

    def _print(self, line: str) -> None:
        self._last_line = time.monotonic()
        self.console.print(line, highlight=False, markup=False)

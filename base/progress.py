"""Progress reporting that runners use without knowing who displays it.

`adapt compare` installs a rich Progress with `showing(progress)`; runners open bars with `bar(description, total)`.
Outside compare (tests, library use) bars are silent no-ops.
"""
from __future__ import annotations

import contextvars
from contextlib import contextmanager
from typing import Any, Callable, Iterator

_display: contextvars.ContextVar[Any] = contextvars.ContextVar("adaptlab_progress", default=None)


@contextmanager
def showing(progress: Any) -> Iterator[None]:
    """Route every bar opened inside this block to a rich.progress.Progress."""
    token = _display.set(progress)
    try:
        yield
    finally:
        _display.reset(token)


@contextmanager
def bar(description: str, total: float | None) -> Iterator[Callable[..., None]]:
    """A bar for one stage of work; yields `advance(n=1, description=None)` (a new description relabels the bar).
    The bar is removed when the stage ends."""
    progress = _display.get()
    if progress is None:
        yield lambda n=1, description=None: None
        return
    task_id = progress.add_task(description, total=total)
    try:
        yield lambda n=1, description=None: progress.update(task_id, advance=n, description=description)
    finally:
        progress.remove_task(task_id)


def note(message: str) -> None:
    """A one-line status message above the bars (or nothing when no display is installed)."""
    progress = _display.get()
    if progress is not None:
        progress.console.print(f"[dim]{message}[/]")

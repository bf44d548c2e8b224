"""One `adapt compare` per results folder: an advisory lock (fcntl.flock) on RESULTS/.adapt.lock.

The kernel drops a flock when its process dies, however it dies, so a lock left by a killed compare is simply taken
over; the file also records who holds it (pid, host, start time, command) so a second compare can say so.
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from base.errors import AdaptError

LOCK_NAME = ".adapt.lock"


def _holder() -> dict[str, Any]:
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return {"pid": os.getpid(), "host": socket.gethostname(), "started_at": started, "command": " ".join(sys.argv)}


def _read(handle: Any) -> dict[str, Any]:
    handle.seek(0)
    try:
        data = json.loads(handle.read() or "{}")
    except json.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


@contextmanager
def results_lock(root: str | Path) -> Iterator[dict[str, Any] | None]:
    """Hold the folder's lock for the block; yields the record of a previous holder that died without releasing it
    (None when the lock was free). A live holder makes this an AdaptError saying who it is."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    path = root / LOCK_NAME
    handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held open for the whole block
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read(handle)
        handle.close()
        who = f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}, started {holder.get('started_at', '?')}"
        raise AdaptError(f"results folder is in use by another `adapt compare` ({who})", file=root,
                         hint="wait for it to finish, or give this one another `--output` folder") from None
    try:
        stale = _read(handle) or None
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(_holder()))
        handle.flush()
        yield stale
    finally:
        handle.seek(0)
        handle.truncate()
        handle.flush()
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        handle.close()

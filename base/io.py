"""Files adaptlab writes and reads byte for byte: one atomic writer, one file hasher, one package downloader.

Every file is written to a temp file in the same folder, flushed to disk and renamed over the target, so a
crash or Ctrl-C never leaves half a JSON, plan, report or PNG behind. Files get the usual mode (0666 less the umask).
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import secrets
from pathlib import Path
from typing import Any, Callable, Iterable, TextIO

from base.errors import AdaptError


def write_atomic(path: Path, write: Callable[[Any], None], *, binary: bool = False) -> None:
    """Call `write(handle)` on a temp file beside `path`, then rename it over `path` (all or nothing)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    # os.open with 0o666 lets the umask decide the mode (0644 usually), as open() would; mkstemp forces 0600
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def staging_dir(parent: Path, prefix: str, suffix: str = ".staging") -> Path:
    """A new, uniquely named folder in `parent` to build something in before renaming it into place; unlike
    tempfile.mkdtemp (0700) its mode follows the umask, so the renamed folder has the usual permissions."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    while True:
        path = parent / f"{prefix}{os.getpid()}.{secrets.token_hex(4)}{suffix}"
        try:
            os.mkdir(path, 0o777)
            return path
        except FileExistsError:
            continue


def write_bytes_atomic(path: Path, data: bytes) -> None:
    write_atomic(path, lambda handle: handle.write(data), binary=True)


def write_text_atomic(path: Path, text: str) -> None:
    write_atomic(path, lambda handle: handle.write(text))


def write_json_atomic(path: Path, data: Any) -> None:
    def dump(handle: TextIO) -> None:
        json.dump(data, handle, indent=2, sort_keys=False, default=str)
        handle.write("\n")

    write_atomic(path, dump)


def write_jsonl_atomic(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    def dump(handle: TextIO) -> None:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")

    write_atomic(path, dump)


def hash_file(path: Path, digest: Any = None) -> Any:
    """Feed a file's bytes into `digest` (a new sha256 when None) with hashlib.file_digest; returns the digest."""
    running = digest if digest is not None else hashlib.sha256()
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, lambda: running)


def file_sha256(path: Path) -> str:
    """sha256 of one file's bytes, as hex."""
    return hash_file(path).hexdigest()


def pip_download(requirement: str, into: Path, *, no_deps: bool = True, hint: str | None = None) -> None:
    """Fetch a package's wheel(s) from the package index into `into` without installing them."""
    into.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", *(["--no-deps"] if no_deps else []), requirement,
               "-d", str(into), "--disable-pip-version-check", "-q"]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        last = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit code {done.returncode}"
        raise AdaptError(f"could not fetch {requirement} from the package index: {last}",
                         hint=hint or "check that the package index is reachable")

"""Where adaptlab keeps what it provisions (one cache root, overridable with ADAPTLAB_HOME), and the one rule for
names that become paths.

Task names, strategy labels and run ids become file and folder names under a results folder: they must match
SAFE_NAME (no separators, no leading dot, so no `..`), and every path built from them is checked by `inside` to
resolve within its root.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from base.errors import AdaptError

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIGS_DIR = REPO_ROOT / "configs"

# Letters, digits, `_`, `.`, `-`; starts with a letter or digit; at most 64 characters.
SAFE_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
SAFE_NAME_HINT = "use letters, digits, '_', '.' and '-' (starting with a letter or digit, at most 64 characters)"
# A run id joins a task name, a strategy label and a config hash with `__`.
SAFE_RUN_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$"


def check_name(name: str, *, field: str, pattern: str = SAFE_NAME) -> str:
    """`name` when it is safe to use as a file name; an AdaptError naming `field` otherwise."""
    if not isinstance(name, str) or re.fullmatch(pattern, name) is None:
        raise AdaptError(f"{name!r} cannot be used as a file name", field=field, hint=SAFE_NAME_HINT)
    return name


def inside(root: str | Path, *parts: str) -> Path:
    """root/parts…, refused unless it resolves (symlinks followed) to a path within root."""
    base = Path(root).resolve()
    path = base.joinpath(*parts).resolve()
    if not path.is_relative_to(base):
        raise AdaptError(f"path {'/'.join(parts)!r} would leave the folder {base}", file=base,
                         hint=SAFE_NAME_HINT)
    return path


def home() -> Path:
    """Cache root: $ADAPTLAB_HOME, else ~/.cache/adaptlab."""
    root = os.environ.get("ADAPTLAB_HOME") or Path.home() / ".cache" / "adaptlab"
    return Path(root).expanduser()


def models_dir() -> Path:
    return home() / "models"


def data_dir() -> Path:
    return home() / "data"


def downloads_dir() -> Path:
    """Registry packages fetched without installing them (wheels are zip files we read from)."""
    return home() / "downloads"


def crash_dir() -> Path:
    """Tracebacks of unexpected errors, saved so the CLI can show one line and point here."""
    return home() / "crashes"

"""Where adaptlab keeps what it provisions: one cache root, overridable with ADAPTLAB_HOME."""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIGS_DIR = REPO_ROOT / "configs"


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

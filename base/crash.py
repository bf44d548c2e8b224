"""Unexpected errors: the traceback goes to a file and the user gets one line pointing at it.

A user mistake is an AdaptError (file, line, field); anything else is a bug, whose traceback is what a bug report
needs but not what a terminal should show.
"""
from __future__ import annotations

import os
import tempfile
import time
import traceback
from pathlib import Path

from base import paths
from base.io import write_text_atomic


def save_traceback(error: BaseException) -> Path:
    """Write the error's traceback under the cache root (or the temp folder when that is not writable)."""
    name = f"crash-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{os.getpid()}.txt"
    text = "".join(traceback.format_exception(error))
    for folder in (paths.crash_dir(), Path(tempfile.gettempdir())):
        try:
            write_text_atomic(folder / name, text)
            return folder / name
        except OSError:
            continue
    raise error

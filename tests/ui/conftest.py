"""A workspace for board tests: the tiny model and a toy classification task, inside one folder. One eval text
carries markup, as a scraped dataset might: the board must show it as text."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from base import paths

PAYLOAD = "<img src=x onerror=\"document.title='pwned'\"><script>document.title='pwned'</script>"


@pytest.fixture()
def workspace_dir(tmp_path, tiny_model_dir) -> Path:
    root = tmp_path / "workspace"
    shutil.copytree(tiny_model_dir, root / "tiny-model")
    rows = [{"text": f"the movie was {'great' if i % 2 else 'awful'} {i}", "label": "positive" if i % 2 else "negative"}
            for i in range(12)]
    rows[9]["text"] = f"awful {PAYLOAD}"
    (root / "data").mkdir()
    (root / "data" / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:8]))
    (root / "data" / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[8:]))
    return root


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture()
def start_board(tmp_path):
    """Start `adapt ui --workspace DIR ARGS...` as a user does; returns its address. Stopped after the test."""
    pytest.importorskip("gradio", reason="the board needs gradio")
    servers = []

    def start(workspace: Path, *args: str) -> str:
        port = free_port()
        env = {**os.environ, "PYTHONPATH": str(paths.REPO_ROOT), "OMP_NUM_THREADS": "1"}
        env.pop("ADAPT_HEARTBEAT_S", None)  # the board's own interval for its jobs
        log = tmp_path / f"board-{port}.log"
        server = subprocess.Popen([sys.executable, "-m", "cli.app", "ui", "--workspace", str(workspace), "--port", str(port), *args],
                                  stdout=log.open("w"), stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
        servers.append(server)
        url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(url, timeout=2)
                return url
            except urllib.error.HTTPError:  # answering (e.g. asking for a login)
                return url
            except OSError:
                assert server.poll() is None, log.read_text()
                time.sleep(0.5)
        raise AssertionError("the board did not start: " + log.read_text())

    yield start
    for server in servers:
        server.terminate()
        server.wait(timeout=30)

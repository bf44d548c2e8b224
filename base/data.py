"""Readers for the data formats users have, all into one Example shape; every error names file, line and field.

Formats (JSONL unless noted; `auto` detects from the first record's keys):
    alpaca          {"instruction", "input"?, "output"}
    chat            {"messages": [{"role", "content"}...]}  (also sharegpt {"conversations": [{"from", "value"}]})
    qa              {"question", "answer", "context"?}      (answer may be a list of accepted strings)
    classification  {"text", "label"}                      (JSONL or CSV with a header)
    mc              {"question", "choices": [...], "answer": index or choice text, "context"?}
    corpus          a folder of .txt/.md files, or JSONL of {"text", "id"?, "title"?}

Chat: the last assistant message is the target, the last user message before it the prompt, and earlier
turns (system included) go in `history`; sharegpt roles human/gpt map to user/assistant.
MC: `answer` may also be a letter (A, B, ...) when it is not itself one of the choices.
Blank lines are skipped; JSON arrays are refused with a one-line conversion hint.
Sizes are bounded so one runaway record cannot exhaust memory in a tokenizer: a text field holds at most
MAX_FIELD_CHARS characters (a corpus document MAX_DOCUMENT_CHARS) and a JSONL line at most MAX_LINE_BYTES.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from base.errors import AdaptError


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


FORMATS = ("alpaca", "chat", "qa", "classification", "mc", "corpus", "preferences")
ACCEPTED_FORMATS = (
    "alpaca {instruction, input?, output}; chat {messages} or sharegpt {conversations}; qa {question, answer}; "
    "classification {text, label} (JSONL or CSV); mc {question, choices, answer}; "
    "corpus (folder of .txt/.md, or JSONL of {text}); preferences {prompt, chosen, rejected} (DPO)"
)
REQUIRED_FIELDS = {
    "alpaca": ("instruction", "output"),
    "qa": ("question", "answer"),
    "classification": ("text", "label"),
    "mc": ("question", "choices", "answer"),
}
CORPUS_SUFFIXES = (".txt", ".md")
ROLE_ALIASES = {"system": "system", "user": "user", "assistant": "assistant", "human": "user", "gpt": "assistant"}
UTF8_HINT = "save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8 IN > OUT`)"
_MISSING = object()
MAX_FIELD_CHARS = 100_000  # ~25k tokens: longer than any model context adaptlab runs
MAX_DOCUMENT_CHARS = 5_000_000  # corpus documents are chunked (RAG) or windowed (CPT), so they may be long
MAX_LINE_BYTES = 4 * MAX_DOCUMENT_CHARS + 1_000_000  # a JSONL line holding the largest document, UTF-8 encoded


@dataclass
class _Record:
    """One parsed row and where it came from, so every problem can name file, line and field."""

    path: Path
    line: int
    data: dict[str, Any]

    def error(self, message: str, field: str | None = None, hint: str | None = None) -> AdaptError:
        return AdaptError(message, file=self.path, line=self.line, field=field, hint=hint)

    def string(self, key: str, required: bool = True, limit: int = MAX_FIELD_CHARS) -> str | None:
        return _check_string(self, key, self.data.get(key, _MISSING), required, limit)

    def default_id(self) -> str:
        value = self.data.get("id")
        return str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else f"{self.path.stem}-{self.line}"


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    return {dict: "an object", list: "a list", str: "a string"}.get(type(value), "a number")


def _check_string(record: _Record, field: str, value: Any, required: bool = True,
                  limit: int = MAX_FIELD_CHARS) -> str | None:
    """A required field must be a non-empty string; an optional one may be missing, null or empty (→ None); none
    may be longer than `limit` characters."""
    if value is _MISSING or value is None:
        if required:
            raise record.error("missing required field" if value is _MISSING else "is null; text is required", field)
        return None
    if not isinstance(value, str):
        raise record.error(f"must be a string, got {_json_type(value)}", field)
    _check_size(record, field, value, limit)
    if not value.strip():
        if required:
            raise record.error("is empty; text is required", field)
        return None
    return value


def _check_size(record: _Record, field: str, value: str, limit: int = MAX_FIELD_CHARS) -> None:
    if len(value) > limit:
        raise record.error(f"is {len(value):,} characters long; at most {limit:,} are accepted", field,
                           hint="shorten or split this record (a model's context holds far less)")


# --- reading files ---------------------------------------------------------------------------------------


def _read_bytes(path: Path) -> bytes:
    if not path.exists():
        raise AdaptError("file not found", file=path)
    if path.is_dir():
        raise AdaptError("is a folder; expected a JSONL or CSV file", file=path,
                         hint="only a corpus may be a folder (of .txt/.md files)")
    raw = path.read_bytes()
    if not raw.removeprefix(b"\xef\xbb\xbf").strip():
        raise AdaptError("file is empty", file=path)
    return raw


def _decode_line(chunk: bytes, path: Path, line: int) -> str:
    try:
        return chunk.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AdaptError(f"not UTF-8: byte 0x{chunk[exc.start]:02x} at column {exc.start + 1}",
                         file=path, line=line, hint=UTF8_HINT) from None


def _raise_or_keep(problem: AdaptError, problems: list[AdaptError] | None) -> None:
    """A bad line stops the read, unless the caller collects problems (`adapt data check` lists them all)."""
    if problems is None:
        raise problem
    problems.append(problem)


def _read_jsonl(path: Path, problems: list[AdaptError] | None = None) -> Iterator[_Record]:
    """Objects one per line; blank lines skipped; a JSON array file gets a conversion hint."""
    raw = _read_bytes(path)
    first = True
    for line, chunk in enumerate(raw.split(b"\n"), 1):
        try:
            text = _decode_line(chunk, path, line).removeprefix("\ufeff")
        except AdaptError as problem:
            _raise_or_keep(problem, problems)
            continue
        if not text.strip():
            continue
        if len(chunk) > MAX_LINE_BYTES:
            raise AdaptError(f"line is {len(chunk) / 1e6:.0f} MB; at most {MAX_LINE_BYTES / 1e6:.0f} MB are accepted",
                             file=path, line=line, hint="one JSON object per line; split very long records")
        if first and text.lstrip().startswith("["):
            raise AdaptError("the file is a JSON array; expected JSONL (one JSON object per line)", file=path, line=1,
                             hint="convert it with `jq -c '.[]' FILE.json > FILE.jsonl`")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            _raise_or_keep(AdaptError(f"invalid JSON: {exc.msg} at column {exc.colno}", file=path, line=line,
                                      hint="each line must be one complete JSON object (a cut-off last line means an "
                                           "interrupted write)"), problems)
            continue
        except RecursionError:
            _raise_or_keep(AdaptError("invalid JSON: nested too deeply", file=path, line=line), problems)
            continue
        if not isinstance(data, dict):
            _raise_or_keep(AdaptError(f"line is {_json_type(data)}, not a JSON object", file=path, line=line), problems)
            continue
        first = False
        yield _Record(path, line, data)


def _decode_csv(path: Path) -> str:
    raw = _read_bytes(path)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise AdaptError(f"not UTF-8: byte 0x{raw[exc.start]:02x} at column {column}", file=path, line=line,
                         hint=UTF8_HINT) from None


def _csv_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(first physical line, cells) per non-blank row; quoted cells may span lines."""
    reader = csv.reader(io.StringIO(_decode_csv(path), newline=""))
    previous_end = 0
    try:
        for cells in reader:
            start, previous_end = previous_end + 1, reader.line_num
            if any(cell.strip() for cell in cells):
                yield start, cells
    except csv.Error as exc:
        if "field larger than field limit" in str(exc):
            raise AdaptError(f"a cell is longer than {csv.field_size_limit():,} characters", file=path,
                             line=reader.line_num, hint="shorten the cell, or check for an unclosed quote") from None
        raise AdaptError(f"malformed CSV: {exc}", file=path, line=reader.line_num) from None


def _csv_header(path: Path) -> list[str]:
    for _, cells in _csv_rows(path):
        return [cell.strip() for cell in cells]
    raise AdaptError("file is empty", file=path)


def _read_csv(path: Path, fmt: str, problems: list[AdaptError] | None = None) -> Iterator[_Record]:
    """Rows as records keyed by the header; the header must name every required field of `fmt`."""
    rows = _csv_rows(path)
    header = [name.strip() for name in next(rows, (0, []))[1]]
    if not header:
        raise AdaptError("file is empty", file=path)
    for name in REQUIRED_FIELDS.get(fmt, ()):
        if name not in header:
            raise AdaptError(f"CSV header has no column '{name}' (columns: {', '.join(header)})", file=path, line=1,
                             field=name, hint=f"{fmt} CSV needs the columns {', '.join(REQUIRED_FIELDS[fmt])}")
    for line, cells in rows:
        if len(cells) != len(header):
            _raise_or_keep(AdaptError(f"row has {len(cells)} cells but the header has {len(header)} columns", file=path,
                                      line=line, hint="quote cells that contain commas or line breaks"), problems)
            continue
        yield _Record(path, line, dict(zip(header, cells)))


def _format_from_keys(keys: set[str]) -> str | None:
    if "messages" in keys or "conversations" in keys:
        return "chat"
    if {"instruction", "output"} <= keys:
        return "alpaca"
    if {"question", "choices"} <= keys:
        return "mc"
    if {"question", "answer"} <= keys:
        return "qa"
    if {"text", "label"} <= keys:
        return "classification"
    if {"prompt", "chosen", "rejected"} <= keys:
        return "preferences"
    if "text" in keys:
        return "corpus"
    return None


def _is_csv(path: Path) -> bool:
    return path.suffix.lower() == ".csv"


def detect_format(path: str | Path) -> str:
    """The format of a file from its first record's keys (CSV: its header; a folder: corpus)."""
    path = Path(path)
    if path.is_dir() or path.suffix.lower() in CORPUS_SUFFIXES:
        return "corpus"
    if _is_csv(path):  # CSV holds flat rows: classification unless the header names another flat format
        found = _format_from_keys(set(_csv_header(path)))
        return found if found in ("alpaca", "qa") else "classification"
    first = next(_read_jsonl(path), None)
    if first is None:
        raise AdaptError("file is empty", file=path)
    found = _format_from_keys(set(first.data))
    if found is None:
        raise AdaptError(f"cannot tell the format from the first record's keys {sorted(first.data)}", file=path,
                         line=first.line, hint=f"accepted formats: {ACCEPTED_FORMATS}")
    return found


def _checked_format(format: str) -> str:
    if format not in FORMATS:
        raise AdaptError(f"unknown format {format!r}", field="format", hint=f"choose auto or one of {', '.join(FORMATS)}")
    return format


# --- one parser per format -------------------------------------------------------------------------------


def _example(record: _Record, prompt: str, target: str, **extra: Any) -> Example:
    extra.setdefault("answers", [target])
    return Example(id=record.default_id(), prompt=prompt, target=target, source=str(record.path), line=record.line, **extra)


def _parse_alpaca(record: _Record) -> Example:
    instruction = record.string("instruction")
    extra_input = record.string("input", required=False)
    prompt = f"{instruction}\n\n{extra_input}" if extra_input else instruction
    return _example(record, prompt, record.string("output"))


def _parse_chat(record: _Record) -> Example:
    key, role_key, content_key = (
        ("messages", "role", "content") if "messages" in record.data else ("conversations", "from", "value"))
    turns = record.data.get(key, _MISSING)
    if turns is _MISSING:
        raise record.error("missing required field", "messages")
    if not isinstance(turns, list):
        raise record.error(f"must be a list of turns, got {_json_type(turns)}", key)
    messages = []
    for index, turn in enumerate(turns):
        where = f"{key}[{index}]"
        if not isinstance(turn, dict):
            raise record.error(f"must be an object with '{role_key}' and '{content_key}', got {_json_type(turn)}", where)
        role_name = _check_string(record, f"{where}.{role_key}", turn.get(role_key, _MISSING))
        role = ROLE_ALIASES.get(role_name.strip().lower())
        if role is None:
            raise record.error(f"unknown role {role_name!r}", f"{where}.{role_key}",
                               hint="roles are system, user, assistant (sharegpt: system, human, gpt)")
        content = turn.get(content_key, _MISSING)
        if not isinstance(content, str):
            _check_string(record, f"{where}.{content_key}", content)  # raises: missing, null or wrong type
        _check_size(record, f"{where}.{content_key}", content)
        messages.append({"role": role, "content": content})
    answer_at = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=None)
    if answer_at is None:
        raise record.error("has no assistant message to learn from", key)
    question_at = max((i for i in range(answer_at) if messages[i]["role"] == "user"), default=None)
    if question_at is None:
        raise record.error("has no user message before the last assistant message", key)
    prompt = _check_string(record, f"{key}[{question_at}].{content_key}", messages[question_at]["content"])
    target = _check_string(record, f"{key}[{answer_at}].{content_key}", messages[answer_at]["content"])
    return _example(record, prompt, target, history=messages[:question_at] or None)


def _parse_qa(record: _Record) -> Example:
    question = record.string("question")
    answer = record.data.get("answer", _MISSING)
    if isinstance(answer, list):
        if not answer:
            raise record.error("is an empty list; give at least one accepted answer", "answer")
        answers = [_check_string(record, f"answer[{i}]", value) for i, value in enumerate(answer)]
    else:
        answers = [_check_string(record, "answer", answer)]
    return _example(record, question, answers[0], answers=answers, context=record.string("context", required=False))


def _label(record: _Record) -> str:
    value = record.data.get("label", _MISSING)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return _check_string(record, "label", value).strip()


def _parse_classification(record: _Record) -> Example:
    return _example(record, record.string("text"), _label(record))


def _choice_text(record: _Record, index: int, value: Any) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return _check_string(record, f"choices[{index}]", value)


def _answer_index(record: _Record, answer: Any, choices: list[str]) -> int:
    """An index, a choice's text, or a letter (A = first) when no choice has that text."""
    if isinstance(answer, int) and not isinstance(answer, bool):
        if not 0 <= answer < len(choices):
            raise record.error(f"index {answer} is out of range for {len(choices)} choices (0-{len(choices) - 1})", "answer")
        return answer
    text = _check_string(record, "answer", answer)
    if text in choices:
        return choices.index(text)
    letter = text.strip().upper()
    if len(letter) == 1 and 0 <= ord(letter) - ord("A") < len(choices):
        return ord(letter) - ord("A")
    raise record.error(f"{text!r} is not one of the choices, an index or a letter", "answer",
                       hint="give the 0-based index of the correct choice or its exact text")


def _parse_mc(record: _Record) -> Example:
    question = record.string("question")
    raw_choices = record.data.get("choices", _MISSING)
    if raw_choices is _MISSING:
        raise record.error("missing required field", "choices")
    if not isinstance(raw_choices, list):
        raise record.error(f"must be a list of choices, got {_json_type(raw_choices)}", "choices")
    if len(raw_choices) < 2:
        raise record.error(f"has {len(raw_choices)} item(s); a multiple-choice question needs at least 2", "choices")
    choices = [_choice_text(record, i, value) for i, value in enumerate(raw_choices)]
    if "answer" not in record.data:
        raise record.error("missing required field", "answer")
    target = choices[_answer_index(record, record.data["answer"], choices)]
    return _example(record, question, target, choices=choices, context=record.string("context", required=False))


PARSERS: dict[str, Callable[[_Record], Example]] = {
    "alpaca": _parse_alpaca, "chat": _parse_chat, "qa": _parse_qa,
    "classification": _parse_classification, "mc": _parse_mc,
}


def load_examples(path: str | Path, format: str = "auto", limit: int | None = None,
                  problems: list[AdaptError] | None = None) -> list[Example]:
    """Read labelled examples (the first `limit` when given); any bad record stops with its file, line and field —
    or, given a `problems` list, is added to it and skipped."""
    path = Path(path)
    fmt = detect_format(path) if format == "auto" else _checked_format(format)
    if fmt == "corpus":
        raise AdaptError("holds documents (a corpus), not labelled examples", file=path, field="format",
                         hint=f"use it as a task's `corpus:`; labelled formats: {ACCEPTED_FORMATS}")
    if fmt == "preferences":
        raise AdaptError("holds preference pairs (prompt, chosen, rejected), not labelled examples", file=path,
                         field="format", hint="use it as a task's `preferences:` (the dpo strategy reads it)")
    records = _read_csv(path, fmt, problems) if _is_csv(path) else _read_jsonl(path, problems)
    examples: list[Example] = []
    for record in records:
        if limit is not None and len(examples) >= limit:
            break
        try:
            examples.append(PARSERS[fmt](record))
        except AdaptError as problem:
            _raise_or_keep(problem, problems)
    return examples


# --- corpora ---------------------------------------------------------------------------------------------


def _text_file_document(path: Path, root: Path) -> Document | None:
    if path.stat().st_size > 4 * MAX_DOCUMENT_CHARS:
        raise AdaptError(f"document is {path.stat().st_size / 1e6:.0f} MB; at most {MAX_DOCUMENT_CHARS:,} characters "
                         "are accepted", file=path, hint="split it into several files")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise AdaptError(f"not UTF-8: byte 0x{raw[exc.start]:02x}", file=path, line=line, hint=UTF8_HINT) from None
    if not text.strip():
        return None
    if len(text) > MAX_DOCUMENT_CHARS:
        raise AdaptError(f"document is {len(text):,} characters long; at most {MAX_DOCUMENT_CHARS:,} are accepted",
                         file=path, hint="split it into several files")
    return Document(id=path.relative_to(root).as_posix(), text=text, title=path.stem, source=str(path))


def _corpus_folder(folder: Path) -> list[Document]:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in CORPUS_SUFFIXES)
    documents = [doc for doc in (_text_file_document(p, folder) for p in files) if doc is not None]
    if not documents:
        raise AdaptError("corpus folder holds no non-empty .txt or .md file", file=folder)
    return documents


def _corpus_jsonl(path: Path) -> list[Document]:
    documents, seen = [], {}
    for record in _read_jsonl(path):
        doc = Document(id=record.default_id(), text=record.string("text", limit=MAX_DOCUMENT_CHARS),
                       title=record.string("title", required=False), source=str(path))
        if doc.id in seen:
            raise record.error(f"duplicate id {doc.id!r} (first on line {seen[doc.id]})", "id")
        seen[doc.id] = record.line
        documents.append(doc)
    return documents


def load_corpus(path: str | Path) -> list[Document]:
    """Documents from a folder of .txt/.md files (empty files skipped), one text file, or JSONL of {text, id?, title?}."""
    path = Path(path)
    if not path.exists():
        raise AdaptError("corpus not found", file=path)
    if path.is_dir():
        return _corpus_folder(path)
    if path.suffix.lower() in CORPUS_SUFFIXES:
        document = _text_file_document(path, path.parent)
        if document is None:
            raise AdaptError("file is empty", file=path)
        return [document]
    return _corpus_jsonl(path)


# --- preference pairs ------------------------------------------------------------------------------------


@dataclass
class Preference:
    """One preference pair (DPO): a prompt, the answer preferred and the one rejected."""

    id: str
    prompt: str
    chosen: str
    rejected: str
    source: str = ""
    line: int = 0


def load_preferences(path: str | Path, limit: int | None = None) -> list[Preference]:
    """Read `{prompt, chosen, rejected}` JSONL (TRL's explicit-prompt preference format); any bad record stops with
    its file, line and field."""
    path = Path(path)
    if _is_csv(path) or path.is_dir():
        raise AdaptError("preference pairs are JSONL records {prompt, chosen, rejected}", file=path, field="preferences")
    pairs: list[Preference] = []
    for record in _read_jsonl(path):
        if limit is not None and len(pairs) >= limit:
            break
        prompt, chosen, rejected = (record.string(key) for key in ("prompt", "chosen", "rejected"))
        if chosen.strip() == rejected.strip():
            raise record.error("chosen and rejected are the same answer: the pair prefers nothing", "rejected")
        pairs.append(Preference(record.default_id(), prompt, chosen, rejected, str(path), record.line))
    if not pairs:
        raise AdaptError("file is empty", file=path, field="preferences")
    return pairs

"""The questionnaire as data: every answer the decision engine reads, with its type, choices, help and
when it applies. The same table drives the interactive prompts, `--answers` YAML and `--set key=value`, so the
three can never disagree about names or valid values. Every field defaults to "unknown" (None).
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Callable

import yaml

from base.errors import AdaptError
from advisor.hardware import GPUS, find_gpu

UNKNOWN = "unknown"


@dataclass(frozen=True)
class Answers:
    # task
    task_name: str = "my_task"
    task_type: str | None = None
    need: str | None = None
    knowledge_changes: str | None = None
    citations: bool | None = None
    strict_format: bool | None = None
    new_vocabulary: bool | None = None
    # data
    labelled_examples: int | None = None
    label_quality: str | None = None
    avg_example_tokens: int | None = None
    train: str | None = None
    eval: str | None = None
    has_corpus: bool | None = None
    corpus_tokens: int | None = None
    corpus: str | None = None
    preferences: str | None = None  # preference pairs (DPO)
    private_data: bool | None = None
    # base model
    model: str = "smollm2-135m-instruct"
    zero_shot_accuracy: float | None = None
    context_window: int | None = None
    # hardware and budget
    gpu: str | None = None
    gpu_count: int = 1
    budget_hours: float | None = None
    budget_usd: float | None = None
    gpu_hour_usd: float | None = None
    # serving
    latency_ms: int | None = None
    queries_per_day: int | None = None
    usd_per_1m_input_tokens: float | None = None
    # risk and schedule
    forgetting_tolerance: str | None = None
    time_to_market: str | None = None

    @property
    def corpus_available(self) -> bool | None:
        """A corpus path or size implies a corpus even when `has_corpus` was not answered."""
        if self.has_corpus is not None:
            return self.has_corpus
        if self.corpus or (self.corpus_tokens or 0) > 0:
            return True
        return None

    @property
    def cpu_only(self) -> bool:
        return self.gpu == "none"

    def answered(self) -> dict[str, Any]:
        """Only what the user actually answered (defaults and unknowns left out)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) != f.default}


@dataclass(frozen=True)
class Question:
    key: str
    text: str
    kind: str  # choice | int | float | fraction | bool | text
    help: str
    choices: tuple[str, ...] = ()
    ask_if: Callable[[Answers], bool] = lambda a: True
    section: str = ""
    most: float | None = None  # the largest believable value (a typo guard: $60M a query is a slip, not a price)


def _labels(a: Answers) -> bool:
    """Label questions apply unless the user said there are none."""
    return a.labelled_examples != 0


QUESTIONS: tuple[Question, ...] = (
    Question("task_name", "Short name for your task", "text", "Used for run names and the plan, e.g. support_tickets.", section="Task"),
    Question("task_type", "What kind of output?", "choice", "classification: pick a label; qa: free-text answer; multiple_choice: pick one of given options.",
             ("classification", "qa", "multiple_choice")),
    Question("need", "What must the model gain?", "choice", "knowledge: facts it does not know; skill: a task it does badly; format: a strict output shape; style: tone/voice.",
             ("knowledge", "skill", "format", "style")),
    Question("knowledge_changes", "How often does that knowledge change?", "choice", "Facts that change often are costly to keep in weights.",
             ("never", "monthly", "weekly", "daily"), ask_if=lambda a: a.need in (None, "knowledge")),
    Question("citations", "Must answers cite their sources?", "bool", "Auditors or users need to see which document an answer came from."),
    Question("strict_format", "Must outputs follow a strict format (JSON, labels, templates)?", "bool", "Hard output constraints that a parser checks."),
    Question("new_vocabulary", "New language or heavy domain vocabulary the base model rarely saw?", "bool", "E.g. a low-resource language, legal/medical/chemical jargon, internal codes."),
    Question("labelled_examples", "How many labelled examples (input → correct output)?", "int", "Count usable pairs; 0 if none. Accepts 2k, 1.5M.", section="Data"),
    Question("label_quality", "How clean are the labels?", "choice", "high: checked by experts; mixed: some noise; low: weak or automatic labels.",
             ("high", "mixed", "low"), ask_if=_labels),
    Question("avg_example_tokens", "Average tokens per example (input + output)?", "int", "Roughly words x 1.3. Drives training time and few-shot prompt cost.", ask_if=_labels),
    Question("train", "Path to the labelled train file (JSONL/CSV)", "text", "Goes into the plan; `adapt data check FILE` validates it.", ask_if=_labels),
    Question("eval", "Path to the eval file", "text", "Held-out examples every strategy is scored on."),
    Question("has_corpus", "Do you have a corpus of unlabelled documents about the domain?", "bool", "Manuals, wiki pages, tickets: raw text for retrieval or continued pre-training."),
    Question("corpus_tokens", "Corpus size in tokens?", "int", "Roughly words x 1.3. Accepts 50M, 2B.", ask_if=lambda a: a.corpus_available is True),
    Question("corpus", "Path to the corpus (folder of .txt/.md or JSONL)", "text", "Goes into the plan for RAG and CPT.", ask_if=lambda a: a.corpus_available is True),
    Question("preferences", "Path to preference pairs, if you have them (JSONL of prompt, chosen, rejected)", "text", "A better and a worse answer to the same prompt, e.g. from user feedback: what DPO learns from. Leave empty if none."),
    Question("private_data", "Must the data stay on your premises?", "bool", "Privacy, regulation or contracts forbid sending it to an outside service."),
    Question("model", "Base model (name, hub id or local folder)", "text", "Known shapes: smollm2-135m-instruct, gemma-3-270m, Qwen2.5-0.5B/1.5B/7B, Llama-3.2-1B/3B, Llama-3.1-8B, Mistral-7B.", section="Base model"),
    Question("zero_shot_accuracy", "Measured or guessed zero-shot accuracy of the base model (0-1)?", "fraction", "Below ~0.5, fine-tuning usually needs hundreds of examples."),
    Question("context_window", "Context window in tokens?", "int", "Bounds how many demos or passages fit in a prompt.", most=10_000_000),
    Question("gpu", "GPU for training", "choice", "'none' for CPU only. Types: " + ", ".join(GPUS), ("none", *GPUS), section="Hardware and budget"),
    Question("gpu_count", "How many of them?", "int", "GPUs on one machine.", ask_if=lambda a: a.gpu not in (None, "none"), most=64),
    Question("budget_hours", "Compute budget in hours (wall clock)?", "float", "How long a training run may take.", most=10_000),
    Question("budget_usd", "Compute budget in $?", "float", "What you may spend on training runs.", most=10_000_000),
    Question("gpu_hour_usd", "Price per GPU hour in $ (blank: list price)?", "float", "Your negotiated or on-prem price; defaults to the GPU table.", ask_if=lambda a: a.gpu not in (None, "none"), most=200),
    Question("latency_ms", "Latency target per query in ms (p95)?", "int", "Long prompts (demos, passages) add prefill time to every query.", section="Serving", most=3_600_000),
    Question("queries_per_day", "Queries per day in production?", "int", "At high volume, extra prompt tokens cost more than training once. Accepts 100k."),
    Question("usd_per_1m_input_tokens", "Price per 1M prompt tokens in $?", "float", "What serving pays per prompt token (API or amortised GPU).", most=1_000),
    Question("forgetting_tolerance", "How much general ability may the model lose?", "choice", "low: it must stay a good general assistant; high: only this task matters.",
             ("low", "medium", "high"), section="Risk and schedule"),
    Question("time_to_market", "When must it ship?", "choice", "days: no time for training runs; months: room to iterate.", ("days", "weeks", "months")),
)
BY_KEY = {q.key: q for q in QUESTIONS}
assert set(BY_KEY) == {f.name for f in fields(Answers)}, "every answer needs exactly one question"

_SUFFIX = {"k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9}
_TRUE, _FALSE = {"yes", "y", "true", "1", "on"}, {"no", "n", "false", "0", "off"}


def _number(raw: Any) -> float:
    if isinstance(raw, bool):
        raise ValueError("expected a number, got a yes/no")
    if isinstance(raw, (int, float)):
        return float(raw)
    match = re.fullmatch(r"\s*([0-9][0-9_,]*\.?[0-9]*)\s*([kmbgKMBG]?)\s*", str(raw))
    if not match:
        raise ValueError(f"expected a number (e.g. 2000, 2k, 1.5M), got {raw!r}")
    return float(match.group(1).replace(",", "").replace("_", "")) * _SUFFIX.get(match.group(2).lower(), 1)


def parse_value(question: Question, raw: Any) -> Any:
    """Turn a typed YAML value or a typed string into the answer's type; `unknown` or blank means None."""
    if raw is None or (isinstance(raw, str) and raw.strip().lower() in ("", UNKNOWN)):
        return None
    if question.kind == "choice":
        text = str(raw).strip()
        for choice in question.choices:
            if text.lower() == choice.lower():
                return choice
        if question.key == "gpu" and find_gpu(text):
            return find_gpu(text).name
        raise ValueError(f"{raw!r} is not one of: {', '.join(question.choices)} (or unknown){_did_you_mean(text, question.choices)}")
    if question.kind == "bool":
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in _TRUE | _FALSE:
            return text in _TRUE
        raise ValueError(f"expected yes or no (or unknown), got {raw!r}")
    if question.kind == "int":
        value = _number(raw)
        if value < 0 or value != int(value):
            raise ValueError(f"expected a whole number >= 0, got {raw!r}")
        return int(_within_bounds(question, value, raw))
    if question.kind in ("float", "fraction"):
        value = _number(raw)
        if question.kind == "fraction" and value > 1:
            value = value / 100 if value <= 100 else value  # 62 means 62%
        if value < 0 or (question.kind == "fraction" and value > 1):
            raise ValueError(f"expected a value between 0 and 1 (or a percentage), got {raw!r}")
        return _within_bounds(question, value, raw)
    return str(raw).strip()


def _did_you_mean(text: str, choices: tuple[str, ...]) -> str:
    """`; did you mean 'knowledge'?` for a typo; every choice it begins for a short form ('a100')."""
    lowered = {choice.lower(): choice for choice in choices}
    started = [choice for key, choice in lowered.items() if key.startswith(text.lower())]
    close = started or [lowered[key] for key in difflib.get_close_matches(text.lower(), lowered, n=1, cutoff=0.6)]
    return f"; did you mean {' or '.join(repr(choice) for choice in close)}?" if close else ""


def _within_bounds(question: Question, value: float, raw: Any) -> float:
    if question.most is not None and value > question.most:
        raise ValueError(f"{raw!r} is more than the {question.most:,g} this question accepts (a typo?)")
    return value


PATH_KEYS = ("train", "eval", "corpus")


def missing_path(key: str, value: Any) -> str | None:
    """Why a data path answer points at nothing (None when it exists, is not a path question, or is unanswered).
    Relative paths are relative to the working folder; `{data}` is the provisioned data cache."""
    if key not in PATH_KEYS or not value:
        return None
    from base import paths

    path = Path(str(value).replace("{data}", str(paths.data_dir()))).expanduser()
    if path.exists():
        return None
    hint = " (`adapt data ensure` provisions {data})" if "{data}" in str(value) else ""
    return f"{key} file {value!r} does not exist{hint}"


def _unknown_key(key: str) -> str:
    close = difflib.get_close_matches(key, BY_KEY, n=1)
    return (f"did you mean '{close[0]}'? " if close else "") + "valid keys: " + ", ".join(BY_KEY)


def apply_answer(answers: Answers, key: str, raw: Any, *, file: str | None = None, line: int | None = None) -> Answers:
    """One answer, validated; errors name where it came from and what would be valid."""
    question = BY_KEY.get(key)
    if question is None:
        raise AdaptError(f"unknown question {key!r}", file=file, line=line, field=key, hint=_unknown_key(key))
    try:
        value = parse_value(question, raw)
    except ValueError as error:
        hint = f"valid choices: {', '.join(question.choices)}, unknown" if question.choices else question.help
        raise AdaptError(str(error), file=file, line=line, field=key, hint=hint) from None
    if value is None and key in ("task_name", "model", "gpu_count"):
        value = next(f.default for f in fields(Answers) if f.name == key)
    return replace(answers, **{key: value})


def load_answers(path: Path, base: Answers = Answers()) -> Answers:
    """Answers from YAML: a flat mapping of question keys; sections as nested mappings are flattened."""
    from base.plan import _line_index

    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AdaptError("answers file not found", file=path) from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise AdaptError(f"not valid YAML: {getattr(exc, 'problem', exc)}", file=path, line=mark.line + 1 if mark else None) from None
    if not isinstance(data, dict):
        raise AdaptError("answers must be a YAML mapping of question: answer", file=path, line=1, hint=_unknown_key(""))
    lines = _line_index(text)
    answers = base
    for key_path, value in _flatten(data):
        answers = apply_answer(answers, key_path[-1], value, file=str(path), line=lines.get(key_path))
    return _resolve_paths(answers, Path(path).resolve().parent)


def _flatten(data: dict, prefix: tuple = ()) -> list[tuple[tuple, Any]]:
    items = []
    for key, value in data.items():
        if isinstance(value, dict) and str(key) not in BY_KEY:
            items.extend(_flatten(value, prefix + (key,)))
        else:
            items.append((prefix + (str(key),), value))
    return items


def _resolve_paths(answers: Answers, base: Path) -> Answers:
    """Data paths in an answers file are relative to that file, like plan paths; `{data}` is kept for the plan."""
    updates = {}
    for key in ("train", "eval", "corpus"):
        value = getattr(answers, key)
        if value and "{data}" not in value and not Path(value).expanduser().is_absolute():
            updates[key] = str(base / value)
    return replace(answers, **updates)


def apply_sets(answers: Answers, sets: list[str]) -> Answers:
    """`--set key=value` answers, applied after the YAML so they override it."""
    for item in sets:
        if "=" not in item:
            raise AdaptError(f"--set {item!r} is not of the form key=value", file="--set", field=item, hint="e.g. --set labelled_examples=2000")
        key, raw = item.split("=", 1)
        answers = apply_answer(answers, key.strip(), raw, file="--set")
    return answers


def display(value: Any) -> str:
    if value is None:
        return UNKNOWN
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)

"""`adapt data check`: validate a data file and show what matters before spending compute on it.

Reading the file with the same readers the runners use is the validation: every bad record is collected and
the first SHOWN_PROBLEMS are listed, each with its file, line and field. The summary then surfaces what silently skews results: prompts too long for the
context, unbalanced labels, duplicated prompts (with conflicting targets), and eval rows that also sit in
the training data.
"""
from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

from base.errors import AdaptError, several
from base.data import FORMATS, Document, Example, detect_format, load_corpus, load_examples, load_preferences

SHOWN_LINES = 10  # line numbers listed per finding; the counts cover everything
SHOWN_PROBLEMS = 20  # bad records listed before stopping (all are counted)


def normalise(text: str) -> str:
    """Compare prompts ignoring case and whitespace differences."""
    return " ".join(text.split()).casefold()


def prompt_key(example: Example) -> str:
    """What makes two examples ask the same thing: earlier chat turns plus the prompt."""
    turns = [turn["content"] for turn in example.history or []]
    return normalise(" \n ".join([*turns, example.prompt]))


def length_stats(lengths: Sequence[int]) -> dict[str, float | int | None]:
    """min / mean / p95 (nearest rank) / max."""
    if not lengths:
        return {"min": None, "mean": None, "p95": None, "max": None}
    ordered = sorted(lengths)
    p95 = ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]
    return {"min": ordered[0], "mean": round(sum(ordered) / len(ordered), 1), "p95": p95, "max": ordered[-1]}


def _lengths(texts: list[str], tokenizer: Any | None) -> list[int]:
    if not texts:
        return []
    if tokenizer is None:
        return [len(text.split()) for text in texts]
    return [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]


def _duplicates(examples: Sequence[Example]) -> dict[str, Any]:
    groups: dict[str, list[Example]] = {}
    for example in examples:
        groups.setdefault(prompt_key(example), []).append(example)
    repeated = [group for group in groups.values() if len(group) > 1]
    return {
        "rows": sum(len(group) - 1 for group in repeated),  # rows beyond the first of each repeated prompt
        "groups": len(repeated),
        "conflicting_targets": sum(1 for group in repeated if len({ex.target for ex in group}) > 1),
        "lines": [[ex.line for ex in group] for group in repeated[:SHOWN_LINES]],
    }


def _overlap(train: Sequence[Example], evaluation: Sequence[Example]) -> dict[str, Any]:
    first_train_line: dict[str, int] = {}
    for example in train:
        first_train_line.setdefault(prompt_key(example), example.line)
    shared = [(ex.line, first_train_line[prompt_key(ex)]) for ex in evaluation if prompt_key(ex) in first_train_line]
    return {
        "eval_rows": len(evaluation),
        "count": len(shared),
        "fraction": round(len(shared) / len(evaluation), 4) if evaluation else 0.0,
        "pairs": [{"eval_line": eval_line, "train_line": train_line} for eval_line, train_line in shared[:SHOWN_LINES]],
    }


def summarise(
    examples: Sequence[Example],
    tokenizer: Any | None = None,
    eval_examples: Sequence[Example] | None = None,
    format: str | None = None,
) -> dict[str, Any]:
    """Rows, lengths (tokens with a tokenizer, else whitespace words), labels, duplicates, train/eval overlap."""
    summary: dict[str, Any] = {
        "rows": len(examples),
        "format": format,
        "length_unit": "tokens" if tokenizer is not None else "words",
        "prompt_length": length_stats(_lengths([ex.prompt for ex in examples], tokenizer)),
        "target_length": length_stats(_lengths([ex.target for ex in examples], tokenizer)),
        "duplicates": _duplicates(examples),
    }
    if format == "classification":
        counts = Counter(ex.target for ex in examples)
        summary["labels"] = {label: {"count": n, "share": round(n / len(examples), 4)} for label, n in counts.most_common()}
    if eval_examples is not None:
        summary["overlap"] = _overlap(examples, eval_examples)
        if format == "classification":
            summary["unseen_eval_labels"] = _unseen_labels(examples, eval_examples)
    return summary


def _unseen_labels(train: Sequence[Example], evaluation: Sequence[Example]) -> list[dict[str, Any]]:
    """Eval labels the training file never shows: no trained model can learn them (one entry per label)."""
    known = {example.target for example in train}
    unseen: dict[str, dict[str, Any]] = {}
    for example in evaluation:
        if example.target not in known:
            unseen.setdefault(example.target, {"label": example.target, "rows": 0, "file": example.source,
                                               "first_line": example.line})["rows"] += 1
    return list(unseen.values())


def summarise_corpus(documents: Sequence[Document]) -> dict[str, Any]:
    """Documents, words, UTF-8 size, words per document, and repeated texts (they skew retrieval)."""
    words = [len(doc.text.split()) for doc in documents]
    texts = Counter(normalise(doc.text) for doc in documents)
    return {
        "format": "corpus",
        "documents": len(documents),
        "words": sum(words),
        "bytes": sum(len(doc.text.encode("utf-8")) for doc in documents),
        "words_per_document": length_stats(words),
        "duplicate_documents": sum(n - 1 for n in texts.values() if n > 1),
    }


def _length_tokenizer(name: str) -> tuple[Any | None, str]:
    """The model's tokenizer when it is at hand; otherwise whitespace words, saying why (never a download)."""
    if name.strip().lower() == "none":
        return None, "words (--tokenizer none)"
    from runners.models import EMBEDDED, is_provisioned, load_tokenizer

    if name in EMBEDDED and not is_provisioned(name):
        return None, f"words ({name} is not provisioned; `adapt models ensure {name}` for token counts)"
    try:
        return load_tokenizer(name), f"tokens ({name})"
    except (AdaptError, OSError, ValueError) as exc:
        return None, f"words (tokenizer {name!r} unavailable: {str(exc).splitlines()[0]})"


def _lines(numbers: list[int]) -> str:
    return ", ".join(str(n) for n in numbers)


def _print_examples_summary(console: Any, file: Path, summary: dict[str, Any]) -> None:
    from rich.table import Table

    console.print(f"[bold]{file}[/]: {summary['rows']} rows, format [cyan]{summary['format']}[/]", highlight=False)
    lengths = Table(title=f"lengths in {summary['length_unit']}", title_justify="left")
    for column in ("field", "min", "mean", "p95", "max"):
        lengths.add_column(column, justify="left" if column == "field" else "right")
    for field in ("prompt", "target"):
        stats = summary[f"{field}_length"]
        lengths.add_row(field, *(str(stats[key]) for key in ("min", "mean", "p95", "max")))
    console.print(lengths)
    if "labels" in summary:
        labels = Table(title="label balance", title_justify="left")
        for column in ("label", "count", "share"):
            labels.add_column(column, justify="left" if column == "label" else "right")
        for label, facts in summary["labels"].items():
            labels.add_row(label, str(facts["count"]), f"{facts['share']:.1%}")
        console.print(labels)
    duplicates = summary["duplicates"]
    if duplicates["rows"]:
        console.print(f"[yellow]duplicate prompts:[/] {duplicates['rows']} rows repeat an earlier prompt "
                      f"({duplicates['groups']} groups, {duplicates['conflicting_targets']} with conflicting targets); "
                      f"lines: {'; '.join(_lines(group) for group in duplicates['lines'])}", highlight=False)
    else:
        console.print("duplicate prompts: none")
    overlap = summary.get("overlap")
    if overlap is not None and overlap["count"]:
        pairs = ", ".join(f"eval {p['eval_line']} = train {p['train_line']}" for p in overlap["pairs"])
        console.print(f"[yellow]train/eval overlap:[/] {overlap['count']} of {overlap['eval_rows']} eval rows "
                      f"({overlap['fraction']:.1%}) also appear in the training file; {pairs}", highlight=False)
    elif overlap is not None:
        console.print(f"train/eval overlap: none ({overlap['eval_rows']} eval rows)")
    for unseen in summary.get("unseen_eval_labels", []):
        console.print(f"[yellow]warning:[/] {unseen['file']}:{unseen['first_line']}: field 'label': {unseen['label']!r} "
                      f"({unseen['rows']} eval row(s)) never appears in {file}; a trained model cannot learn it, and "
                      "a plan needs it listed under the task's `labels:`", highlight=False, soft_wrap=True)


def _print_corpus_summary(console: Any, file: Path, summary: dict[str, Any]) -> None:
    stats = summary["words_per_document"]
    console.print(f"[bold]{file}[/]: corpus of {summary['documents']} documents, {summary['words']} words, "
                  f"{summary['bytes'] / 1e6:.2f} MB", highlight=False)
    console.print(f"words per document: min {stats['min']}, mean {stats['mean']}, p95 {stats['p95']}, max {stats['max']}")
    if summary["duplicate_documents"]:
        console.print(f"[yellow]duplicate documents:[/] {summary['duplicate_documents']}")


def check_command(file: Path, format: str = "auto", eval_file: Path | None = None,
                  tokenizer: str = "smollm2-135m-instruct") -> dict[str, Any]:
    """Validate FILE (and --eval), print the summary, and return it; bad input raises AdaptError (CLI exit 2)."""
    from rich.console import Console

    console = Console()
    if format != "auto" and format not in FORMATS:
        raise AdaptError(f"unknown format {format!r}", field="format", hint=f"choose auto or one of {', '.join(FORMATS)}")
    file = Path(file)
    fmt = detect_format(file) if format == "auto" else format
    if fmt == "corpus":
        summary = summarise_corpus(load_corpus(file))
        _print_corpus_summary(console, file, summary)
    elif fmt == "preferences":
        summary = {"format": fmt, "pairs": len(load_preferences(file))}
        console.print(f"{file}: {summary['pairs']} preference pairs (prompt, chosen, rejected)", highlight=False)
    else:
        problems: list[AdaptError] = []
        examples = load_examples(file, fmt, problems=problems)
        eval_examples = load_examples(eval_file, format, problems=problems) if eval_file is not None else None
        if problems:
            raise several(problems, shown=SHOWN_PROBLEMS)
        length_tokenizer, unit = _length_tokenizer(tokenizer)
        summary = summarise(examples, length_tokenizer, eval_examples, format=fmt)
        summary["length_unit"] = unit
        _print_examples_summary(console, file, summary)
    summary["file"] = str(file)
    warnings = len(summary.get("unseen_eval_labels", []))
    console.print(f"[yellow]valid, with {warnings} warning(s)[/]" if warnings else "[green]valid[/]")
    return summary

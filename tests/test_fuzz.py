"""A seeded fuzz of the input readers: 1,000 malformed JSONL, CSV and YAML inputs thrown at `data check` and plan
loading. Every one must end in a result or an AdaptError (file, line, field) — never another exception, never a
hang, never a memory blow-up.

A seeded generator rather than hypothesis: the inputs are byte-level corruptions of valid files, which a small
generator states directly; the seed and case number in a failure reproduce it.
"""
from __future__ import annotations

import json
import random
import resource
import signal
import time
from contextlib import contextmanager

import pytest
import yaml

from base.data import MAX_FIELD_CHARS
from base.errors import AdaptError
from base.plan import parse_plan
from runners.data_check import check_command

SEED = 12
CASES = {"jsonl": 400, "csv": 300, "yaml": 300}
CASE_TIMEOUT_S = 10
MAX_GROWTH_MB = 500

VALID_ROWS = [
    {"text": "the movie was great", "label": "positive"},
    {"question": "2+2?", "answer": ["4", "four"], "context": "maths"},
    {"question": "Sky colour?", "choices": ["blue", "green"], "answer": 0},
    {"instruction": "Translate", "input": "bonjour", "output": "hello"},
    {"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"},
                  {"role": "assistant", "content": "hello"}]},
    {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]},
    {"text": "a corpus document", "id": "d1", "title": "t"},
]
VALID_PLAN = {
    "name": "fuzz", "model": "smollm2-135m-instruct", "seed": 0, "output_dir": "out",
    "tasks": [{"name": "toy", "type": "classification", "train": "train.jsonl", "eval": "eval.jsonl",
               "labels": ["negative", "positive"], "eval_limit": 10}],
    "strategies": ["zero_shot", {"strategy": "few_shot", "k": 2}, {"strategy": "lora", "r": 4, "label": "lora-r4"}],
    "forgetting": {"enabled": False},
}


def random_value(rng: random.Random, depth: int = 0):
    """Any JSON value, including the awkward ones: null, booleans, huge and negative numbers, empty containers,
    control characters, long strings (sometimes over the field limit), nesting."""
    choice = rng.randrange(12)
    if choice == 0:
        return None
    if choice == 1:
        return rng.choice([True, False])
    if choice == 2:
        return rng.choice([0, -1, 2**63, 10**30, 3.5, float("1e308")])
    if choice == 3:
        return ""
    if choice == 4:
        return rng.choice([" ", "\t\n", "\x00", "\u202e", "é", "🙂", "../../etc", "a/b", "..", "{data}/x"])
    if choice == 5:
        return "w" * rng.choice([1, 1000, MAX_FIELD_CHARS + 1])
    if choice == 6 and depth < 3:
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    if choice == 7 and depth < 3:
        return {rng.choice(["text", "label", "role", "content", "x"]): random_value(rng, depth + 1)
                for _ in range(rng.randrange(3))}
    return rng.choice(["positive", "negative", "user", "assistant", "A", "0", "yes"])


def mutate_record(rng: random.Random, record):
    """A valid record with one or more fields dropped, retyped, added or nested."""
    record = json.loads(json.dumps(record))
    for _ in range(rng.randrange(1, 4)):
        keys = list(record)
        action = rng.randrange(4)
        if action == 0 and keys:
            del record[rng.choice(keys)]
        elif action == 1 and keys:
            record[rng.choice(keys)] = random_value(rng)
        elif action == 2:
            record[rng.choice(["text", "label", "answer", "choices", "messages", "question", "x"])] = random_value(rng)
        elif keys and isinstance(record[keys[0]], list) and record[keys[0]]:
            record[keys[0]][0] = random_value(rng)
    return record


def corrupt_bytes(rng: random.Random, data: bytes) -> bytes:
    """Byte-level damage: truncation, insertion, invalid UTF-8, NULs, BOMs, line-ending changes."""
    action = rng.randrange(8)
    cut = rng.randrange(len(data) + 1)
    if action == 0:
        return data[:cut]
    if action == 1:
        return data[:cut] + bytes([rng.randrange(256)]) + data[cut:]
    if action == 2:
        return data[:cut] + b"\xff\xfe\xc3" + data[cut:]
    if action == 3:
        return data.replace(b"\n", b"\r") if rng.random() < 0.5 else data.replace(b"\n", b"\r\n")
    if action == 4:
        return b"\xef\xbb\xbf" + data
    if action == 5:
        return data[:cut] + b"\x00" + data[cut:]
    if action == 6:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
    return data + data[:cut]


def jsonl_input(rng: random.Random) -> bytes:
    kind = rng.randrange(10)
    if kind == 0:
        return rng.choice([b"", b"\n\n  \n", b"[]", b"[{\"text\": \"a\", \"label\": \"b\"}]", b"5\n", b"\"text\"\n"])
    if kind == 1:
        depth = rng.choice([50, 900, 5000])
        return ("{\"text\": " + "[" * depth + "]" * depth + ", \"label\": \"x\"}\n").encode()
    base = rng.choice(VALID_ROWS)
    rows = [mutate_record(rng, base) if rng.random() < 0.6 else base for _ in range(rng.randrange(1, 6))]
    data = "".join(json.dumps(row, ensure_ascii=rng.random() < 0.5) + "\n" for row in rows).encode()
    return corrupt_bytes(rng, data) if rng.random() < 0.4 else data


def csv_input(rng: random.Random) -> bytes:
    header = rng.choice([["text", "label"], ["label", "text"], ["question", "answer"], ["text"], ["instruction", "output"],
                         ["", "label"], ["text", "text"]])
    lines = [",".join(header)]
    for _ in range(rng.randrange(0, 6)):
        cells = [rng.choice(["great movie", "positive", "", "\"quoted, cell\"", "\"unclosed", "a,b", "x" * 140_000,
                             "line\nbreak", "\"multi\nline\""]) for _ in range(rng.choice([len(header), len(header) + 1, 1]))]
        lines.append(",".join(cells))
    data = "\n".join(lines).encode()
    return corrupt_bytes(rng, data) if rng.random() < 0.4 else data


def mutate_plan(rng: random.Random, node, depth: int = 0):
    """The valid plan with values swapped for random ones at random places."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if rng.random() < 0.08:
                continue
            out[key] = random_value(rng) if rng.random() < 0.12 else mutate_plan(rng, value, depth + 1)
        if rng.random() < 0.05:
            out[rng.choice(["extra", "tasks", "strategies", "label", "name"])] = random_value(rng)
        return out
    if isinstance(node, list):
        return [random_value(rng) if rng.random() < 0.1 else mutate_plan(rng, item, depth + 1) for item in node]
    return node


def yaml_input(rng: random.Random) -> bytes:
    kind = rng.randrange(10)
    if kind == 0:
        return rng.choice([b"", b"- a\n- b\n", b"just text", b"tasks: 5\nstrategies: 5\n", b"\t- bad: indent\n",
                           b"a: &a [x, x]\nb: &b [*a, *a]\nc: &c [*b, *b]\n", b"? [a]\n: b\n", b"!!python/object:os.system x"])
    if kind == 1:
        depth = rng.choice([100, 3000])
        return ("tasks: " + "[" * depth + "]" * depth + "\n").encode()
    if kind == 2:  # aliases nested to a billion references
        levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
        levels += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
        return ("\n".join(levels) + "\ntasks: *a8\nstrategies: [zero_shot]\n").encode()
    data = yaml.safe_dump(mutate_plan(rng, VALID_PLAN), allow_unicode=rng.random() < 0.5).encode()
    return corrupt_bytes(rng, data) if rng.random() < 0.3 else data


@contextmanager
def time_limit(seconds: int, case: str):
    def expired(signum, frame):
        raise TimeoutError(f"{case} ran over {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_a_thousand_malformed_inputs_end_in_clear_errors(tmp_path, capsys):
    rng = random.Random(SEED)
    (tmp_path / "train.jsonl").write_text(json.dumps(VALID_ROWS[0]) + "\n")
    (tmp_path / "eval.jsonl").write_text(json.dumps(VALID_ROWS[0]) + "\n")
    started, rss_before = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    counts = {"ok": 0, "error": 0}
    for kind, total in CASES.items():
        for number in range(total):
            case = f"seed {SEED} {kind} case {number}"
            if kind == "yaml":
                data = yaml_input(rng)
                text = data.decode("utf-8", errors="replace")

                def call():
                    plan = parse_plan(text, source="fuzz.yaml", base_dir=tmp_path)
                    plan.check_runnable("fuzz.yaml")
            else:
                data = (jsonl_input if kind == "jsonl" else csv_input)(rng)
                path = tmp_path / f"case-{number}.{kind}"
                path.write_bytes(data)
                fmt = rng.choice(["auto", "auto", "classification", "qa", "mc", "chat", "alpaca", "corpus"])

                def call():
                    check_command(path, format=fmt, tokenizer="none")

            try:
                with time_limit(CASE_TIMEOUT_S, case):
                    call()
                counts["ok"] += 1
            except AdaptError as error:
                assert str(error).strip(), case
                counts["error"] += 1
            except Exception as error:  # noqa: BLE001 - the point of the test
                pytest.fail(f"{case}: {type(error).__name__}: {error}\ninput: {data[:300]!r}")
            capsys.readouterr()  # drop the printed summaries as we go
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    assert sum(counts.values()) == 1000
    assert counts["error"] > 600  # the inputs really are malformed, mostly
    assert grown_mb < MAX_GROWTH_MB
    assert time.perf_counter() - started < 60

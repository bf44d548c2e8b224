"""The questionnaire table: parsing and validation of answers from YAML, --set and the interactive prompts."""
from __future__ import annotations

import io
from dataclasses import fields

import pytest
from rich.console import Console

from advisor.advise_cmd import ask
from base.errors import AdaptError
from advisor.questions import BY_KEY, QUESTIONS, Answers, apply_sets, load_answers, parse_value


def test_every_answer_has_one_question_with_help():
    assert [q.key for q in QUESTIONS] == [f.name for f in fields(Answers)]
    for question in QUESTIONS:
        assert question.help and question.text
        assert (question.kind == "choice") == bool(question.choices)


@pytest.mark.parametrize("key, raw, expected", [
    ("labelled_examples", "2k", 2000), ("labelled_examples", "1,500", 1500), ("corpus_tokens", "1.5M", 1_500_000),
    ("labelled_examples", 300, 300), ("citations", "yes", True), ("citations", "N", False), ("citations", True, True),
    ("need", "Style", "style"), ("gpu", "a100 80gb", "A100-80GB"), ("gpu", "none", "none"),
    ("zero_shot_accuracy", "0.42", 0.42), ("zero_shot_accuracy", "62", 0.62), ("need", "unknown", None),
    ("budget_hours", "", None), ("task_name", "tickets", "tickets"),
])
def test_values_parse_to_their_types(key, raw, expected):
    assert parse_value(BY_KEY[key], raw) == expected


@pytest.mark.parametrize("key, raw, message", [
    ("labelled_examples", "lots", "expected a number"), ("labelled_examples", "2.5", "whole number"),
    ("citations", "maybe", "yes or no"), ("need", "facts", "knowledge, skill, format, style"),
    ("zero_shot_accuracy", "250", "between 0 and 1"), ("budget_usd", True, "yes/no"),
])
def test_bad_values_are_rejected_with_what_is_valid(key, raw, message):
    with pytest.raises(ValueError, match=message):
        parse_value(BY_KEY[key], raw)


def test_answers_yaml_with_sections_and_relative_paths(tmp_path):
    path = tmp_path / "answers.yaml"
    path.write_text("task:\n  task_type: qa\n  citations: yes\ndata:\n  labelled_examples: 2k\n"
                    "  train: my/train.jsonl\n  eval: '{data}/sciq/eval.jsonl'\ngpu: L4\n")
    answers = load_answers(path)
    assert answers.task_type == "qa" and answers.citations is True and answers.labelled_examples == 2000
    assert answers.train == str(tmp_path / "my" / "train.jsonl")  # relative to the answers file
    assert answers.eval == "{data}/sciq/eval.jsonl"  # expanded later, by the plan parser
    assert answers.gpu == "L4"


def test_unknown_key_names_file_line_and_suggests_the_right_one(tmp_path):
    path = tmp_path / "answers.yaml"
    path.write_text("task:\n  task_type: qa\n  labeled_examples: 50\n")
    with pytest.raises(AdaptError) as caught:
        load_answers(path)
    error = caught.value
    assert (error.file, error.line, error.field) == (str(path), 3, "labeled_examples")
    assert "did you mean 'labelled_examples'" in error.hint


def test_bad_choice_in_yaml_lists_the_valid_choices(tmp_path):
    path = tmp_path / "answers.yaml"
    path.write_text("forgetting_tolerance: none\n")
    with pytest.raises(AdaptError) as caught:
        load_answers(path)
    assert caught.value.line == 1 and caught.value.field == "forgetting_tolerance"
    assert "low, medium, high" in caught.value.hint


def test_not_a_mapping_and_bad_yaml_are_user_errors(tmp_path):
    path = tmp_path / "answers.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(AdaptError, match="mapping"):
        load_answers(path)
    path.write_text("a: [1, 2\n")
    with pytest.raises(AdaptError, match="not valid YAML"):
        load_answers(path)
    with pytest.raises(AdaptError, match="not found"):
        load_answers(tmp_path / "missing.yaml")


def test_sets_override_yaml_and_reject_malformed_items(tmp_path):
    path = tmp_path / "answers.yaml"
    path.write_text("labelled_examples: 100\n")
    answers = apply_sets(load_answers(path), ["labelled_examples=5k", "gpu=h100"])
    assert answers.labelled_examples == 5000 and answers.gpu == "H100"
    with pytest.raises(AdaptError) as caught:
        apply_sets(Answers(), ["labelled_examples"])
    assert caught.value.file == "--set"
    with pytest.raises(AdaptError, match="unknown question"):
        apply_sets(Answers(), ["gpus=2"])


def test_corpus_is_implied_by_its_size_or_path():
    assert Answers().corpus_available is None
    assert Answers(corpus_tokens=10).corpus_available is True
    assert Answers(has_corpus=False, corpus_tokens=10).corpus_available is False


def scripted(lines: list[str]) -> tuple[Console, list[str]]:
    """A console whose input() answers from a script and records every prompt it showed."""
    console = Console(file=io.StringIO(), width=200)
    prompts: list[str] = []

    def fake_input(prompt: str = "", **_: object) -> str:
        prompts.append(prompt)
        return lines.pop(0) if lines else ""

    console.input = fake_input  # type: ignore[method-assign]
    return console, prompts


def test_interactive_help_reask_and_skipping():
    script = ["sst2", "?", "regression", "classification", "style", "", "", "", "0"]
    console, prompts = scripted(script)
    answers = ask(Answers(), console)
    output = console.file.getvalue()
    assert answers.task_name == "sst2" and answers.task_type == "classification" and answers.need == "style"
    assert answers.labelled_examples == 0
    assert BY_KEY["task_type"].help in output  # `?` showed the help
    assert "'regression' is not one of" in output  # bad input was refused and asked again
    shown = " ".join(prompts)
    assert "How often does that knowledge change" not in shown  # need=style: not a knowledge question
    assert "How clean are the labels" not in shown  # no labels: no label questions
    assert "Corpus size in tokens" not in shown  # corpus unknown: size not asked
    assert sum("What kind of output" in p for p in prompts) == 3


def test_interactive_enter_keeps_given_answers():
    console, _ = scripted([])
    given = Answers(task_name="kept", labelled_examples=300, has_corpus=True)
    answers = ask(given, console)
    assert answers == given


def test_yes_no_questions_show_their_options():
    console, prompts = scripted([])
    ask(Answers(task_name="t", need="knowledge"), console)
    citations = next(p for p in prompts if "cite their sources" in p)
    assert "(yes/no)" in citations
    assert "(yes/no)" not in next(p for p in prompts if "How many labelled examples" in p)


@pytest.mark.parametrize("typed, gpu", [("a10", "A10G"), ("A10", "A10G"), ("4090", "RTX-4090"), ("a10g", "A10G")])
def test_short_gpu_names_map_to_the_table(typed, gpu):
    assert parse_value(BY_KEY["gpu"], typed) == gpu


def test_a_choice_typo_gets_a_did_you_mean():
    with pytest.raises(ValueError, match="did you mean 'knowledge'"):
        parse_value(BY_KEY["need"], "knowlege")
    with pytest.raises(ValueError, match="did you mean 'A100-40GB' or 'A100-80GB'"):
        parse_value(BY_KEY["gpu"], "a100")
    with pytest.raises(ValueError) as far_off:
        parse_value(BY_KEY["need"], "zzz")
    assert "did you mean" not in str(far_off.value)


@pytest.mark.parametrize("key, raw", [("usd_per_1m_input_tokens", "60000000"), ("gpu_hour_usd", "5000"),
                                      ("budget_hours", "1e9"), ("gpu_count", "1000")])
def test_absurd_amounts_are_rejected(key, raw):
    with pytest.raises(ValueError, match="a typo"):
        parse_value(BY_KEY[key], raw if "e" not in raw else 10**9)


def test_believable_amounts_pass():
    assert parse_value(BY_KEY["usd_per_1m_input_tokens"], "15") == 15.0
    assert parse_value(BY_KEY["gpu_hour_usd"], "3.5") == 3.5


def test_interactive_rejects_a_train_file_that_does_not_exist_and_asks_again(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "train.jsonl").write_text('{"text": "a", "label": "b"}\n')
    console = Console(file=io.StringIO(), width=200)
    typed = ["nope.jsonl", "train.jsonl"]
    prompts: list[str] = []

    def fake_input(prompt: str = "", **_: object) -> str:  # Enter everywhere but at the train file question
        prompts.append(prompt)
        return typed.pop(0) if "labelled train file" in prompt else ""

    console.input = fake_input  # type: ignore[method-assign]
    answers = ask(Answers(), console)
    assert answers.train == "train.jsonl"
    assert "train file 'nope.jsonl' does not exist" in console.file.getvalue()
    assert sum("labelled train file" in p for p in prompts) == 2


def test_missing_paths_from_answers_files_become_warnings(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from cli.app import app

    monkeypatch.chdir(tmp_path)
    done = CliRunner().invoke(app, ["advise", "-s", "eval=missing.jsonl", "-s", "labelled_examples=0", "--plan", "p.yaml"])
    assert done.exit_code == 0, done.output
    assert "eval file 'missing.jsonl' does not exist" in " ".join(done.output.split())


def test_advise_summarises_the_plan_it_wrote(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from cli.app import app

    monkeypatch.chdir(tmp_path)
    done = CliRunner().invoke(app, ["advise", "-s", "task_name=tickets", "-s", "labelled_examples=600", "-s", "gpu=none",
                                    "-s", "budget_hours=1", "--plan", "out/plan.yaml"])
    assert done.exit_code == 0, done.output
    output = " ".join(done.output.split())
    assert "runs: zero_shot, lora" in output
    assert "eval " in output and "items, train up to 600 examples" in output
    assert "forgetting checks after lora" in output and "25 items each" in output
    assert "results: results/tickets/" in output

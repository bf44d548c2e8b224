"""The advise form is generated from the terminal's question table and parses answers with the terminal's parser."""
from __future__ import annotations

from advisor.questions import QUESTIONS, Answers
from ui.questionnaire import answers_from_form, form_field, form_fields
from ui.workspace import Workspace


def test_one_field_per_question_in_table_order_with_its_text_help_and_section():
    fields = form_fields()
    assert [f.key for f in fields] == [q.key for q in QUESTIONS]
    by_key = {f.key: f for f in fields}
    for question in QUESTIONS:
        assert by_key[question.key].label == question.text and by_key[question.key].info == question.help
    assert by_key["labelled_examples"].section == "Data" and by_key["label_quality"].section == "Data"
    assert by_key["gpu_count"].section == "Hardware and budget"


def test_widgets_by_kind_keep_unknown_as_an_answer():
    by_key = {q.key: q for q in QUESTIONS}
    need = form_field(by_key["need"])
    assert need.widget == "dropdown" and need.choices == ("unknown", "knowledge", "skill", "format", "style")
    citations = form_field(by_key["citations"])
    assert citations.widget == "dropdown" and citations.choices == ("unknown", "yes", "no") and citations.default == "unknown"
    examples = form_field(by_key["labelled_examples"])
    assert examples.widget == "text" and examples.default == ""  # blank is unknown
    assert form_field(by_key["model"]).default == Answers().model
    assert form_field(by_key["gpu_count"]).default == "1"


def test_form_values_parse_like_the_terminal_and_bad_ones_are_named(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.jsonl").write_text("{}\n")
    workspace = Workspace.at(tmp_path)
    answers, errors = answers_from_form({"task_type": "classification", "labelled_examples": "2k", "citations": "yes",
                                         "zero_shot_accuracy": "62", "train": "data/train.jsonl", "gpu": "unknown",
                                         "budget_usd": "lots", "eval": "data/missing.jsonl"}, workspace)
    assert (answers.task_type, answers.labelled_examples, answers.citations) == ("classification", 2000, True)
    assert answers.zero_shot_accuracy == 0.62 and answers.gpu is None
    assert answers.train == str(tmp_path / "data" / "train.jsonl")  # absolute: the board's cwd is not the workspace
    assert set(errors) == {"budget_usd", "eval"}
    assert "expected a number" in errors["budget_usd"] and "does not exist" in errors["eval"]
    assert answers.budget_usd is None and answers.eval is None


def test_a_data_path_outside_the_workspace_is_refused_beside_its_field(tmp_path):
    outside = tmp_path / "secret.jsonl"
    outside.write_text("{}\n")
    (tmp_path / "ws").mkdir()
    answers, errors = answers_from_form({"train": str(outside), "eval": "../secret.jsonl"}, Workspace.at(tmp_path / "ws"))
    assert "outside the workspace" in errors["train"] and "outside the workspace" in errors["eval"]
    assert answers.train is None and answers.eval is None

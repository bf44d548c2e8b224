"""The advise questionnaire as a web form, generated from the terminal's question table (advisor.questions), so
the two ask the same questions with the same choices, defaults and help, and parse answers the same way.

Every question becomes one field: a choice a dropdown of its choices plus `unknown`; a yes/no question a dropdown
of unknown/yes/no (three states: `unknown` is an answer too); numbers and paths a text box that accepts what the
terminal accepts (`2k`, `1.5M`, `62%`).
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from advisor.questions import PATH_KEYS, QUESTIONS, UNKNOWN, Answers, Question, apply_answer, display
from base.errors import AdaptError
from ui.workspace import DATA_PLACEHOLDER, Workspace

DEFAULTS = {f.name: f.default for f in fields(Answers)}


@dataclass(frozen=True)
class FormField:
    key: str
    widget: str  # dropdown | text
    label: str
    info: str  # the question's help text
    default: str
    choices: tuple[str, ...] = ()
    section: str = ""


def form_field(question: Question) -> FormField:
    """One question as one form field."""
    default = display(DEFAULTS[question.key])
    if question.kind == "choice":
        return FormField(question.key, "dropdown", question.text, question.help, default, (UNKNOWN, *question.choices))
    if question.kind == "bool":
        return FormField(question.key, "dropdown", question.text, question.help, default, (UNKNOWN, "yes", "no"))
    return FormField(question.key, "text", question.text, question.help, "" if default == UNKNOWN else default)


def form_fields() -> list[FormField]:
    """Every question in table order, each carrying the section it opens (the terminal's headings)."""
    section = ""
    result = []
    for question in QUESTIONS:
        section = question.section or section
        field = form_field(question)
        result.append(FormField(**{**field.__dict__, "section": section}))
    return result


def answers_from_form(values: dict[str, Any], workspace: Workspace) -> tuple[Answers, dict[str, str]]:
    """Parse the form with the terminal's parser: (answers, {key: error}) — a bad field is left unanswered and
    its error shown beside it. Data paths, and a model given as a folder, are relative to the workspace and must lie
    inside it; they are made absolute, since the board's own working folder is not the workspace."""
    answers = Answers()
    errors: dict[str, str] = {}
    for question in QUESTIONS:
        try:
            answers = _answer(answers, question, values.get(question.key), workspace)
        except AdaptError as error:
            errors[question.key] = error.message
    return answers, errors


def _answer(answers: Answers, question: Question, raw: Any, workspace: Workspace) -> Answers:
    """`answers` with this question answered, or an AdaptError (and the answer left as it was)."""
    answered = apply_answer(answers, question.key, raw, file="form")
    value = getattr(answered, question.key)
    if question.key == "model" and value and (workspace.root / Path(value).expanduser()).exists():
        return apply_answer(answers, "model", str(workspace.resolve(value, field="model")))
    if question.key in PATH_KEYS and value:
        path = workspace.readable(value, field=question.key)
        if not path.exists():
            raise AdaptError(f"{value!r} does not exist in the workspace", field=question.key)
        if not value.startswith(DATA_PLACEHOLDER):  # `{data}` stays a placeholder, as in shipped plans
            return apply_answer(answers, question.key, str(path))
    return answered

"""Readers: every format into Example/Document, and every bad input as an AdaptError naming file, line and field."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from base.errors import AdaptError
from base.data import detect_format, load_corpus, load_examples

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "data"


@pytest.mark.parametrize("name, expected", [
    ("alpaca.jsonl", "alpaca"), ("chat.jsonl", "chat"), ("sharegpt.jsonl", "chat"), ("qa.jsonl", "qa"),
    ("classification.jsonl", "classification"), ("classification.csv", "classification"), ("mc.jsonl", "mc"),
    ("corpus.jsonl", "corpus"), ("corpus", "corpus"),
])
def test_detect_format_from_first_record(name, expected):
    assert detect_format(FIXTURES / name) == expected


def test_alpaca_joins_instruction_and_input_and_skips_blank_lines():
    first, second = load_examples(FIXTURES / "alpaca.jsonl")
    assert first.prompt == "Translate to French.\n\nGood morning"
    assert (first.target, first.answers, first.line) == ("Bonjour", ["Bonjour"], 1)
    assert second.prompt == "Name a primary colour."  # empty input adds nothing
    assert second.line == 3  # the blank line 2 was skipped, line numbers stay physical
    assert second.source == str(FIXTURES / "alpaca.jsonl")


def test_chat_takes_last_assistant_as_target_and_earlier_turns_as_history():
    first, second = load_examples(FIXTURES / "chat.jsonl")
    assert (first.prompt, first.target) == ("And of Italy?", "Rome")
    assert first.history == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Paris"},
    ]
    assert (second.prompt, second.target, second.history) == ("2 + 2?", "4", None)


def test_sharegpt_roles_map_to_chat_roles():
    (example,) = load_examples(FIXTURES / "sharegpt.jsonl")
    assert (example.prompt, example.target) == ("Boiling point of water?", "100 C")
    assert example.history == [{"role": "system", "content": "Be brief."}]


def test_qa_answer_list_and_context():
    first, second = load_examples(FIXTURES / "qa.jsonl")
    assert first.id == "q1"
    assert (first.target, first.answers) == ("carbon dioxide", ["carbon dioxide", "CO2"])
    assert first.context == "Plants absorb carbon dioxide during photosynthesis."
    assert (second.target, second.answers, second.context, second.id) == ("Shakespeare", ["Shakespeare"], None, "qa-2")


def test_classification_labels_are_normalised_to_strings():
    examples = load_examples(FIXTURES / "classification.jsonl")
    assert [ex.target for ex in examples] == ["positive", "negative", "1", "true"]
    assert examples[0].prompt == "the movie was great"


def test_classification_csv_keeps_quoted_commas_and_newlines_and_physical_lines():
    examples = load_examples(FIXTURES / "classification.csv")
    assert [(ex.prompt, ex.target, ex.line) for ex in examples] == [
        ("great, truly great", "positive", 2),
        ("a film\nover two lines", "negative", 3),
        ("plain", "neutral", 6),  # line 5 is blank
    ]


def test_mc_answer_as_index_text_or_letter():
    examples = load_examples(FIXTURES / "mc.jsonl")
    assert [ex.target for ex in examples] == ["whale", "Mars", "4"]
    assert examples[0].choices == ["shark", "whale", "trout"]
    assert examples[1].context == "Mars orbits the Sun."
    assert examples[2].choices == ["3", "4", "5"]


def test_limit_reads_only_the_first_rows():
    assert [ex.target for ex in load_examples(FIXTURES / "classification.jsonl", limit=2)] == ["positive", "negative"]


def test_explicit_format_overrides_detection():
    (example,) = load_examples(FIXTURES / "sharegpt.jsonl", format="chat")
    assert example.target == "100 C"
    with pytest.raises(AdaptError) as caught:
        load_examples(FIXTURES / "qa.jsonl", format="classification")
    assert (caught.value.line, caught.value.field) == (1, "text")


def test_corpus_folder_reads_txt_and_md_recursively_and_skips_empty_files():
    documents = load_corpus(FIXTURES / "corpus")
    assert [(doc.id, doc.title) for doc in documents] == [("france.txt", "france"), ("sub/italy.md", "italy")]
    assert documents[1].text.startswith("# Italy")


def test_corpus_jsonl_ids_and_titles():
    first, second = load_corpus(FIXTURES / "corpus.jsonl")
    assert (first.id, first.title) == ("d1", "Water")
    assert (second.id, second.title) == ("corpus-2", None)


# --- bad input ------------------------------------------------------------------------------------------

LATIN1_LABEL = '{"text": "ok", "label": "a"}\n{"text": "caf'.encode() + b"\xe9" + b'", "label": "b"}\n'
CHAT_NO_ASSISTANT = '{"messages": [{"role": "user", "content": "hi"}]}\n'
CHAT_BAD_ROLE = '{"messages": [{"role": "user", "content": "hi"}, {"role": "bot", "content": "yo"}]}\n'


@pytest.mark.parametrize("name, content, format, line, field, words", [
    ("empty.jsonl", b"", "auto", None, None, "empty"),
    ("blank.jsonl", b"\n  \n", "auto", None, None, "empty"),
    ("latin1.jsonl", LATIN1_LABEL, "auto", 2, None, "byte 0xe9"),
    ("truncated.jsonl", b'{"text": "a", "label": "x"}\n{"text": "b", "lab', "auto", 2, None, "invalid JSON"),
    ("list.jsonl", b'{"text": "a", "label": "x"}\n["b", "y"]\n', "auto", 2, None, "not a JSON object"),
    ("array.json", b'[\n  {"text": "a", "label": "x"}\n]\n', "auto", 1, None, "JSON array"),
    ("unknown.jsonl", b'{"foo": 1, "bar": 2}\n', "auto", 1, None, "cannot tell the format"),
    ("missing.jsonl", b'{"text": "a", "label": "x"}\n{"text": "b"}\n', "classification", 2, "label", "missing required"),
    ("listlabel.jsonl", b'{"text": "a", "label": ["x", "y"]}\n', "classification", 1, "label", "got a list"),
    ("nulllabel.jsonl", b'{"text": "a", "label": null}\n', "classification", 1, "label", "null"),
    ("emptytext.jsonl", b'{"text": "a", "label": "x"}\n\n{"text": "  ", "label": "y"}\n', "auto", 3, "text", "empty"),
    ("numbertext.jsonl", b'{"text": 5, "label": "y"}\n', "classification", 1, "text", "got a number"),
    ("onechoice.jsonl", b'{"question": "q", "choices": ["a"], "answer": 0}\n', "auto", 1, "choices", "at least 2"),
    ("choicesstr.jsonl", b'{"question": "q", "choices": "a,b", "answer": 0}\n', "auto", 1, "choices", "list"),
    ("badindex.jsonl", b'{"question": "q", "choices": ["a", "b"], "answer": 2}\n', "auto", 1, "answer", "out of range"),
    ("badanswer.jsonl", b'{"question": "q", "choices": ["a", "b"], "answer": "zebra"}\n', "auto", 1, "answer", "not one of the choices"),
    ("nochoiceanswer.jsonl", b'{"question": "q", "choices": ["a", "b"]}\n', "mc", 1, "answer", "missing required"),
    ("emptychoice.jsonl", b'{"question": "q", "choices": ["a", ""], "answer": 0}\n', "mc", 1, "choices[1]", "empty"),
    ("qaemptylist.jsonl", b'{"question": "q", "answer": []}\n', "auto", 1, "answer", "empty list"),
    ("qalistitem.jsonl", b'{"question": "q", "answer": ["a", 3]}\n', "auto", 1, "answer[1]", "got a number"),
    ("alpaca.jsonl", b'{"instruction": "do", "output": ""}\n', "auto", 1, "output", "empty"),
    ("noassistant.jsonl", CHAT_NO_ASSISTANT.encode(), "auto", 1, "messages", "no assistant"),
    ("badrole.jsonl", CHAT_BAD_ROLE.encode(), "auto", 1, "messages[1].role", "unknown role"),
    ("turnnotobj.jsonl", b'{"messages": ["hi", "yo"]}\n', "auto", 1, "messages[0]", "must be an object"),
    ("nocontent.jsonl", b'{"messages": [{"role": "user"}, {"role": "assistant", "content": "x"}]}\n', "auto", 1,
     "messages[0].content", "missing required"),
    ("header.csv", b"sentence,label\ngood,pos\n", "auto", 1, "text", "no column 'text'"),
    ("cells.csv", b"text,label\ngood,pos\nbad,neg,extra\n", "auto", 3, None, "3 cells"),
    ("latin1.csv", b"text,label\ngood,pos\ncaf\xe9,neg\n", "auto", 3, None, "byte 0xe9"),
    ("empty.csv", b"", "auto", None, None, "empty"),
])
def test_bad_input_names_file_line_and_field(tmp_path, name, content, format, line, field, words):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(AdaptError) as caught:
        load_examples(path, format=format)
    error = caught.value
    assert error.file == str(path)
    assert (error.line, error.field) == (line, field)
    assert words in error.message


def test_unknown_format_is_refused_with_the_accepted_list():
    with pytest.raises(AdaptError) as caught:
        load_examples(FIXTURES / "qa.jsonl", format="squad")
    assert caught.value.field == "format"
    assert "classification" in caught.value.hint


def test_missing_file_and_corpus_given_as_examples(tmp_path):
    with pytest.raises(AdaptError, match="not found"):
        load_examples(tmp_path / "nope.jsonl")
    with pytest.raises(AdaptError, match="corpus") as caught:
        load_examples(FIXTURES / "corpus")
    assert caught.value.field == "format"


def test_corpus_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(AdaptError, match="no non-empty .txt or .md"):
        load_corpus(tmp_path / "empty")
    duplicate = tmp_path / "dup.jsonl"
    duplicate.write_text('{"id": "a", "text": "x"}\n{"id": "a", "text": "y"}\n')
    with pytest.raises(AdaptError) as caught:
        load_corpus(duplicate)
    assert (caught.value.line, caught.value.field) == (2, "id")
    assert "first on line 1" in caught.value.message
    notext = tmp_path / "notext.jsonl"
    notext.write_text('{"id": "a", "body": "x"}\n')
    with pytest.raises(AdaptError) as caught:
        load_corpus(notext)
    assert (caught.value.line, caught.value.field) == (1, "text")
    folder = tmp_path / "latin"
    folder.mkdir()
    (folder / "a.txt").write_bytes(b"ok\ncaf\xe9\n")
    with pytest.raises(AdaptError) as caught:
        load_corpus(folder)
    assert (caught.value.file, caught.value.line) == (str(folder / "a.txt"), 2)


def test_utf8_bom_is_accepted(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + b'{"text": "a", "label": "x"}\n')
    assert [ex.target for ex in load_examples(path)] == ["x"]


def test_preference_pairs_load_and_bad_ones_name_file_line_and_field(tmp_path):
    from base.data import load_preferences

    good = {"prompt": "great film", "chosen": "positive", "rejected": "negative"}
    path = tmp_path / "prefs.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, "rejected": " positive "}) + "\n")
    with pytest.raises(AdaptError) as caught:
        load_preferences(path)
    assert (caught.value.line, caught.value.field) == (2, "rejected") and "prefers nothing" in str(caught.value)
    path.write_text(json.dumps(good) + "\n" + json.dumps({"prompt": "x", "chosen": "y"}) + "\n")
    with pytest.raises(AdaptError) as caught:
        load_preferences(path)
    assert (caught.value.line, caught.value.field) == (2, "rejected") and "missing" in str(caught.value)
    path.write_text(json.dumps(good) + "\n")
    (pair,) = load_preferences(path)
    assert (pair.prompt, pair.chosen, pair.rejected, pair.line) == ("great film", "positive", "negative", 1)
    with pytest.raises(AdaptError, match="preference pairs .* not labelled examples"):
        load_examples(path)  # given as a train file by mistake

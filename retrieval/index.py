"""FAISS indexes over L2-normalised embeddings (inner product = cosine), saved once and shared between runs.

flat  exact search; the default and the reference for recall.
ivf   inverted lists, nlist = sqrt(n) (the usual rule), searched with `nprobe` lists. Training k-means needs about
      39 points per list, so small corpora fall back to flat with a note rather than a poorly trained index.
hnsw  graph search with M links per node and `ef_search` candidates per query.

An index is cached under base.paths.home()/indexes/<key>/ (index.faiss, vectors.npy, chunks.jsonl, meta.json),
where key hashes the corpus content, embedder name, chunk settings and index settings: any run of any plan
with the same inputs reuses it.
"""
from __future__ import annotations

import hashlib
import json
import math
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from base import paths
from base.errors import AdaptError
from retrieval.chunking import Chunk, chunk_corpus
from retrieval.embedders import Embedder
from base.data import Document
from base.io import write_json_atomic, write_jsonl_atomic

KINDS = ("flat", "ivf", "hnsw")
IVF_MIN_POINTS_PER_LIST = 39  # faiss warns below this many training points per centroid
DEFAULT_NPROBE = 16  # of sqrt(n) lists; recall@10 0.989 on 4,188 SciQ chunks (8: 0.955), see bench/rag_bench.py
DEFAULT_HNSW_M = 32
DEFAULT_EF_SEARCH = 64
FORMAT_VERSION = 1


@dataclass
class BuiltIndex:
    """A FAISS index plus what was actually built (kind may differ from the request after a fallback)."""

    index: Any
    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    note: str | None = None


def ivf_nlist(n_vectors: int) -> int:
    return max(1, round(math.sqrt(n_vectors)))


def build_index(vectors: np.ndarray, kind: str = "flat", *, nlist: int | None = None, nprobe: int = DEFAULT_NPROBE,
                hnsw_m: int = DEFAULT_HNSW_M, ef_search: int = DEFAULT_EF_SEARCH, seed: int = 0) -> BuiltIndex:
    """Index `vectors` (n x d float32, L2-normalised) for inner-product search."""
    import faiss

    if kind not in KINDS:
        raise ValueError(f"unknown index kind {kind!r}; choose one of {KINDS}")
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n, dim = vectors.shape
    if kind == "ivf":
        nlist = nlist or ivf_nlist(n)
        if n < nlist * IVF_MIN_POINTS_PER_LIST:
            note = (f"ivf needs >= {nlist * IVF_MIN_POINTS_PER_LIST} vectors to train {nlist} lists, corpus has {n}: "
                    "used exact flat search")
            return BuiltIndex(_flat(vectors), "flat", {}, note)
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = seed
        index.train(vectors)
        index.add(vectors)
        index.nprobe = min(nprobe, nlist)
        return BuiltIndex(index, "ivf", {"nlist": nlist, "nprobe": index.nprobe})
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.add(vectors)
        index.hnsw.efSearch = ef_search
        return BuiltIndex(index, "hnsw", {"M": hnsw_m, "ef_search": ef_search})
    return BuiltIndex(_flat(vectors), "flat")


def _flat(vectors: np.ndarray) -> Any:
    import faiss

    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    return index


def search(index: Any, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(scores, ids), each n_queries x k; ids are -1 where the index holds fewer than k vectors."""
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    if queries.ndim == 1:
        queries = queries[None, :]
    return index.search(queries, k)


def recall_at_k(approx_ids: np.ndarray, exact_ids: np.ndarray) -> float:
    """Share of the exact top-k neighbours the approximate search also returned (mean over queries)."""
    approx_ids, exact_ids = np.asarray(approx_ids), np.asarray(exact_ids)
    found = total = 0
    for approx_row, exact_row in zip(approx_ids, exact_ids):
        exact = {int(i) for i in exact_row if i >= 0}
        found += len(exact & {int(i) for i in approx_row if i >= 0})
        total += len(exact)
    return found / total if total else 1.0


def nearest(embedder: Embedder, pool_texts: Sequence[str], query_texts: Sequence[str], k: int) -> list[list[int]]:
    """Exact top-k pool indices for each query, most similar first (few-shot "similar" demo selection)."""
    if not pool_texts or not query_texts:
        return [[] for _ in query_texts]
    pool = embedder.embed(list(pool_texts))
    _, ids = search(_flat(pool), embedder.embed(list(query_texts)), min(k, len(pool_texts)))
    return [[int(i) for i in row if i >= 0] for row in ids]


# --- the shared on-disk cache -------------------------------------------------------------------------------


@dataclass
class CorpusIndex:
    """A searchable corpus: the index, its chunks (row i of the index is chunks[i]) and the vectors."""

    built: BuiltIndex
    chunks: list[Chunk]
    vectors: np.ndarray
    key: str
    folder: Path
    reused: bool  # loaded from the cache rather than built in this call
    build_s: float  # chunk + embed + index time of the original build


def corpus_digest(documents: Sequence[Document]) -> str:
    """Content hash of the documents (id, title, text), independent of where the corpus file lives."""
    digest = hashlib.sha256()
    for document in documents:
        digest.update(json.dumps([document.id, document.title, document.text]).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def cache_key(digest: str, embedder_name: str, chunk_size: int, chunk_overlap: int, kind: str,
              params: dict[str, Any] | None = None) -> str:
    blob = json.dumps({"v": FORMAT_VERSION, "corpus": digest, "embedder": embedder_name, "chunk_size": chunk_size,
                       "chunk_overlap": chunk_overlap, "index": kind, "params": params or {}}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def indexes_dir() -> Path:
    return paths.home() / "indexes"


def save_index(folder: Path, built: BuiltIndex, chunks: Sequence[Chunk], vectors: np.ndarray,
               meta: dict[str, Any]) -> None:
    """Write into a temp folder beside `folder`, then rename: readers never see half an index."""
    import faiss

    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    try:
        faiss.write_index(built.index, str(staging / "index.faiss"))
        np.save(staging / "vectors.npy", vectors)
        write_jsonl_atomic(staging / "chunks.jsonl", (chunk.to_json() for chunk in chunks))
        write_json_atomic(staging / "meta.json", {**meta, "kind": built.kind, "params": built.params,
                                                  "note": built.note, "n_chunks": len(chunks)})
        try:
            staging.rename(folder)
        except OSError:
            if not (folder / "meta.json").exists():
                raise
            shutil.rmtree(staging)  # another process finished the same index first; theirs is identical
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def load_index(folder: Path) -> tuple[BuiltIndex, list[Chunk], np.ndarray, dict[str, Any]]:
    import faiss

    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    index = faiss.read_index(str(folder / "index.faiss"))
    params = meta.get("params") or {}
    if meta["kind"] == "ivf":
        index.nprobe = params["nprobe"]
    elif meta["kind"] == "hnsw":
        index.hnsw.efSearch = params["ef_search"]
    with open(folder / "chunks.jsonl", encoding="utf-8") as handle:
        chunks = [Chunk.from_json(json.loads(line)) for line in handle if line.strip()]
    vectors = np.load(folder / "vectors.npy")
    return BuiltIndex(index, meta["kind"], params, meta.get("note")), chunks, vectors, meta


def get_corpus_index(documents: Sequence[Document], embedder: Embedder, *, chunk_size: int, chunk_overlap: int,
                     kind: str = "flat", **index_params: Any) -> CorpusIndex:
    """Load the cached index for these inputs, or chunk, embed, index and cache it."""
    key = cache_key(corpus_digest(documents), embedder.name, chunk_size, chunk_overlap, kind, index_params)
    folder = indexes_dir() / key
    if (folder / "meta.json").exists():
        built, chunks, vectors, meta = load_index(folder)
        return CorpusIndex(built, chunks, vectors, key, folder, reused=True, build_s=meta["build_s"])
    started = time.perf_counter()
    chunks = chunk_corpus(documents, chunk_size, chunk_overlap)
    if not chunks:
        raise AdaptError("the corpus has no text to index", field="corpus",
                         hint="a folder of .txt/.md files or JSONL of {\"text\": ...} records with non-empty text")
    vectors = embedder.embed([chunk.embedding_text for chunk in chunks])
    built = build_index(vectors, kind, **index_params)
    build_s = time.perf_counter() - started
    save_index(folder, built, chunks, vectors, {
        "embedder": embedder.name, "dim": int(vectors.shape[1]), "chunk_size": chunk_size,
        "chunk_overlap": chunk_overlap, "requested_kind": kind, "build_s": build_s,
        "documents": len(documents), "format": FORMAT_VERSION,
    })
    return CorpusIndex(built, chunks, vectors, key, folder, reused=False, build_s=build_s)

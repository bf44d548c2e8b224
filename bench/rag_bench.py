"""Flat vs IVF vs HNSW on a real corpus: build time, query throughput and recall@k against exact search.

The corpus is SciQ's support paragraphs (the provisioned {data}/sciq/corpus.jsonl, see `adapt data ensure`), chunked small to get a few thousand vectors, embedded with all-MiniLM-L6-v2; the queries
are SciQ's questions. The chunk vectors come from (and go to) the shared index cache, so a re-run skips embedding.
Every ratio is against flat measured in this same run, on one FAISS thread.

    python bench/rag_bench.py [--chunk-size 24 --overlap 8 --k 10 --threads 1]
"""
from __future__ import annotations

import argparse
import json
import time
from typing import Any, Callable

from retrieval.chunking import is_hit
from retrieval.embedders import DEFAULT_EMBEDDER, get_embedder
from retrieval.index import build_index, get_corpus_index, recall_at_k, search
from base.data import Document, load_corpus

SETTINGS: list[tuple[str, dict[str, Any]]] = [
    ("flat", {}),
    ("ivf", {"nprobe": 4}), ("ivf", {"nprobe": 8}), ("ivf", {"nprobe": 16}),
    ("hnsw", {"ef_search": 16}), ("hnsw", {"ef_search": 64}), ("hnsw", {"ef_search": 128}),
]


def sciq() -> tuple[list[Document], list[str], list[str | None], str]:
    """(documents, questions, gold contexts, where they came from), from the provisioned bundled SciQ."""
    from runners.bundled import ensure_datasets

    folder = ensure_datasets(["sciq"])["sciq"]
    rows = [json.loads(line) for split in ("train", "eval") for line in (folder / f"{split}.jsonl").open()]
    return (load_corpus(folder / "corpus.jsonl"), [r["question"] for r in rows], [r.get("context") for r in rows],
            str(folder))


def timed(call: Callable[[], Any], min_seconds: float = 0.5) -> tuple[float, Any]:
    """Best-of wall time of `call`, repeated until min_seconds have passed (at least twice)."""
    best, result, spent, runs = float("inf"), None, 0.0, 0
    while spent < min_seconds or runs < 2:
        start = time.perf_counter()
        result = call()
        elapsed = time.perf_counter() - start
        best, spent, runs = min(best, elapsed), spent + elapsed, runs + 1
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunk-size", type=int, default=24)
    parser.add_argument("--overlap", type=int, default=8)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--hit-k", type=int, default=3, help="top-k for the gold-passage hit rate")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import faiss
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from base.progress import showing

    faiss.omp_set_num_threads(args.threads)
    console = Console(width=200)
    documents, questions, contexts, source = sciq()
    embedder = get_embedder(DEFAULT_EMBEDDER, "cpu")
    with Progress(console=console, transient=True) as progress, showing(progress):
        corpus = get_corpus_index(documents, embedder, chunk_size=args.chunk_size, chunk_overlap=args.overlap)
        queries = embedder.embed(questions)
    chunks, vectors = corpus.chunks, corpus.vectors
    console.print(f"corpus: {source}: {len(documents)} documents -> {len(chunks)} chunks of {args.chunk_size} words "
                  f"(overlap {args.overlap}), dim {vectors.shape[1]}; chunk+embed {corpus.build_s:.1f} s "
                  f"({'cached in ' + str(corpus.folder) if corpus.reused else 'this run'}); {len(questions)} queries; "
                  f"faiss threads {args.threads}")

    rows = []
    exact_ids = None
    for kind, params in SETTINGS:
        build_s, built = timed(lambda: build_index(vectors, kind, **params), min_seconds=0.2)
        search_s, (_, ids) = timed(lambda: search(built.index, queries, args.k))
        one_s, _ = timed(lambda: [search(built.index, queries[i:i + 1], args.k) for i in range(100)])
        exact_ids = ids if kind == "flat" else exact_ids
        judged = [any(is_hit(chunks[i].text, gold) for i in row[:args.hit_k] if i >= 0)
                  for row, gold in zip(ids, contexts) if gold]
        rows.append({"index": kind, "params": built.params, "note": built.note, "build_s": build_s,
                     "qps": len(queries) / search_s, "single_ms": one_s / 100 * 1000,
                     "recall": recall_at_k(ids, exact_ids), "hit": sum(judged) / len(judged)})

    flat = rows[0]
    table = Table(title=f"SciQ, {len(chunks)} vectors, recall@{args.k} vs exact, hit@{args.hit_k} vs gold passage")
    for column in ("index", "params", "build s", "build ×flat", "queries/s (batch)", "×flat", "1-query ms", "×flat",
                   f"recall@{args.k}", f"hit@{args.hit_k}"):
        table.add_column(column, justify="left" if column in ("index", "params") else "right")
    for row in rows:
        table.add_row(row["index"], ", ".join(f"{k}={v}" for k, v in row["params"].items()) or "-",
                      f"{row['build_s']:.4f}", f"{row['build_s'] / flat['build_s']:.1f}",
                      f"{row['qps']:,.0f}", f"{row['qps'] / flat['qps']:.2f}",
                      f"{row['single_ms']:.3f}", f"{row['single_ms'] / flat['single_ms']:.2f}",
                      f"{row['recall']:.3f}", f"{row['hit']:.3f}")
    console.print(table)
    for row in rows:
        if row["note"]:
            console.print(f"note: {row['note']}")


if __name__ == "__main__":
    main()

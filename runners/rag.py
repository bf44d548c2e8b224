"""rag: retrieve the top-k chunks of the task's corpus for each question and put them in the base model's prompt.

Besides the task metric it records how good the retrieval was: `retrieval_hit_rate` (share of examples with a known
gold passage where some retrieved chunk overlaps it, see retrieval.chunking.is_hit) and, for ivf/hnsw,
`index_recall_at_k` against exact search on the same queries. What was retrieved for each example is written to
artifacts/<run_id>/retrieval.jsonl. Cost adds index_build_s (chunk + embed + index time of the build that made the
cached index), index_reused (whether this run loaded it instead of paying that), chunks, index_kind and
retrieval_latency_p50_s (one query embedded and searched at a time).
"""
from __future__ import annotations

import time
from typing import Sequence

import numpy as np

from base.errors import AdaptError
from base.plan import RagSettings, RunSpec
from retrieval.chunking import Chunk, is_hit
from retrieval.embedders import get_embedder
from retrieval.index import CorpusIndex, build_index, get_corpus_index, recall_at_k, search
from base.data import Example
from runners.common import load_task_data, run_prompted, seed_everything
from runners.models import load_model
from base.progress import note
from base.io import write_jsonl_atomic
from base.results import RunResult
from runners.scoring import percentile, time_each


def gold_hits(examples: Sequence[Example], retrieved: Sequence[Sequence[Chunk]]) -> list[bool | None]:
    """Per example: did some retrieved chunk hit its gold context (None when the example has no context)."""
    return [any(is_hit(chunk.text, example.context) for chunk in chunks) if example.context else None
            for example, chunks in zip(examples, retrieved)]


def retrieval_metrics(corpus: CorpusIndex, hits: Sequence[bool | None], query_vectors: np.ndarray,
                      ids: np.ndarray, k: int) -> dict[str, float]:
    """Hit rate over the examples with a gold context; recall@k against exact search for approximate indexes."""
    metrics: dict[str, float] = {}
    judged = [hit for hit in hits if hit is not None]
    if judged:
        metrics["retrieval_hit_rate"] = sum(judged) / len(judged)
    if corpus.built.kind != "flat":
        _, exact_ids = search(build_index(corpus.vectors, "flat").index, query_vectors, k)
        metrics["index_recall_at_k"] = recall_at_k(ids, exact_ids)
    return metrics


def run(spec: RunSpec) -> RunResult:
    started = time.time()
    seed_everything(spec.seed)
    settings: RagSettings = spec.strategy  # type: ignore[assignment]
    data = load_task_data(spec, need_corpus=True)
    if not data.corpus:
        raise AdaptError(f"rag needs a corpus but task {spec.task.name!r} has none", field=f"tasks.{spec.task.name}.corpus")
    embedder = get_embedder(settings.embedder, spec.device)
    corpus = get_corpus_index(data.corpus, embedder, chunk_size=settings.chunk_size,
                              chunk_overlap=settings.chunk_overlap, kind=settings.index)
    if corpus.built.note:
        note(corpus.built.note)
    queries = [example.prompt for example in data.eval]
    query_vectors = embedder.embed(queries)
    scores, ids = search(corpus.built.index, query_vectors, settings.top_k)
    retrieved = [[corpus.chunks[i] for i in row if i >= 0] for row in ids]
    hits = gold_hits(data.eval, retrieved)
    write_jsonl_atomic(spec.run_dir / "retrieval.jsonl", (
        {"id": example.id, "chunks": [chunk.id for chunk in chunks], "scores": [float(s) for s in row[:len(chunks)]],
         "hit": hit}
        for example, chunks, row, hit in zip(data.eval, retrieved, scores, hits)))
    cost = {
        "index_build_s": corpus.build_s, "index_reused": corpus.reused, "index_kind": corpus.built.kind,
        "chunks": len(corpus.chunks),
        "retrieval_latency_p50_s": percentile(  # embed + search one query at a time, as a served request would
            time_each(lambda query: search(corpus.built.index, embedder.embed([query]), settings.top_k), queries), 50),
    }
    if corpus.built.note:
        cost["index_note"] = corpus.built.note
    metrics = retrieval_metrics(corpus, hits, query_vectors, ids, settings.top_k)
    model, tokenizer = load_model(spec.model, spec.device, spec.dtype)
    return run_prompted(spec, model, tokenizer, data, started, passages=[[chunk.text for chunk in chunks] for chunks in retrieved],
                        extra_cost=cost, extra_metrics=metrics)

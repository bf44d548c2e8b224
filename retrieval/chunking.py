"""Word-window chunking of a corpus, and when a retrieved chunk counts as the gold passage. Pure functions.

Chunks are windows of `size` words that start every `size - overlap` words; the last window always ends at the
document's last word, so no text is dropped and no window is wholly inside the previous one.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any, Iterable

from base.data import Document

HIT_THRESHOLD = 0.5
_TOKEN = re.compile(r"\w+")


@dataclass(frozen=True)
class Chunk:
    """A window of one document: where it came from (doc id/title, word offsets) and its text."""

    id: str  # "<doc_id>#<n>"
    doc_id: str
    text: str
    start_word: int  # offsets in the document's whitespace-split words; end is exclusive
    end_word: int
    title: str | None = None

    @property
    def embedding_text(self) -> str:
        """What gets embedded: the title adds topic words a short window may lack."""
        return f"{self.title}\n{self.text}" if self.title else self.text

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Chunk":
        return cls(**data)


def chunk_document(document: Document, size: int, overlap: int) -> list[Chunk]:
    """Split one document into overlapping word windows (an empty document gives no chunks)."""
    if size < 1 or not 0 <= overlap < size:
        raise ValueError(f"need size >= 1 and 0 <= overlap < size, got size={size} overlap={overlap}")
    words = document.text.split()
    chunks: list[Chunk] = []
    start = 0
    while start < len(words):
        end = min(start + size, len(words))
        chunks.append(Chunk(id=f"{document.id}#{len(chunks)}", doc_id=document.id, text=" ".join(words[start:end]),
                            start_word=start, end_word=end, title=document.title))
        if end == len(words):
            break
        start += size - overlap
    return chunks


def chunk_corpus(documents: Iterable[Document], size: int, overlap: int) -> list[Chunk]:
    return [chunk for document in documents for chunk in chunk_document(document, size, overlap)]


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def _shingles(tokens: list[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)}


def passage_overlap(chunk_text: str, gold: str) -> float:
    """Share of the shorter text's word trigrams found in the longer one (0..1).

    Trigrams rather than single words: two unrelated paragraphs share many stopwords but few word triples, while
    a chunk cut from the gold passage (or a chunk holding all of it) scores 1.0 whatever its length.
    Texts shorter than three words fall back to single words.
    """
    a, b = _tokens(chunk_text), _tokens(gold)
    shorter, longer = (a, b) if len(a) <= len(b) else (b, a)
    if not shorter:
        return 0.0
    n = 3 if len(shorter) >= 3 else 1
    wanted = _shingles(shorter, n)
    return len(wanted & _shingles(longer, n)) / len(wanted)


def is_hit(chunk_text: str, gold: str, threshold: float = HIT_THRESHOLD) -> bool:
    """A retrieved chunk hits the gold passage when at least half of the shorter one's trigrams are in the other."""
    return passage_overlap(chunk_text, gold) >= threshold

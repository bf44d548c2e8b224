"""Shared fixtures: tiny models built from config and a tokenizer trained in-process (no downloads)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

# Before any Hugging Face import reads them: tests never touch the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CORPUS = [
    "the movie was great and the acting was wonderful",
    "a terrible boring film with awful dialogue",
    "question: what is the capital of france? answer: paris",
    "positive negative neutral label text answer question context passage",
    "water boils at one hundred degrees celsius at sea level",
    "photosynthesis converts light energy into chemical energy in plants",
    "user assistant system you are a helpful assistant",
] * 4


def build_tiny_tokenizer():
    """A byte-level BPE tokenizer trained on a few sentences, with a ChatML template like SmolLM2's."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(CORPUS, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                   pad_token="<|endoftext|>", unk_token="<|endoftext|>")
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_tiny_model(tokenizer, seed: int = 0):
    """A 2-layer Llama with the module names real models have (q_proj, v_proj, down_proj...)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return LlamaForCausalLM(config)


@pytest.fixture()
def one_thread():
    """Tiny models gain nothing from threads, and on a shared 2-core machine spinning threads slow them tenfold."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_tokenizer():
    return build_tiny_tokenizer()


@pytest.fixture()
def tiny_model(tiny_tokenizer):
    return build_tiny_model(tiny_tokenizer)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_tokenizer):
    """A tiny model saved as a normal HF folder, for code paths that load models by path."""
    folder = tmp_path_factory.mktemp("tiny-model")
    build_tiny_model(tiny_tokenizer).save_pretrained(folder)
    tiny_tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(autouse=True)
def isolated_home(request, tmp_path, monkeypatch):
    """Unit tests get an empty cache root; integration tests keep the real one (the provisioned model and data)."""
    if request.node.get_closest_marker("integration") is None:
        monkeypatch.setenv("ADAPTLAB_HOME", str(tmp_path / "adaptlab-home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_VERBOSITY", "error")
    yield


@pytest.fixture(scope="session")
def real_model_path():
    """The provisioned embedded model, or skip with the reason (integration tests only)."""
    from runners.models import DEFAULT_MODEL, is_provisioned, cached_path

    if not is_provisioned(DEFAULT_MODEL):
        try:
            from runners.models import ensure_model
            ensure_model(DEFAULT_MODEL)
        except Exception as exc:  # noqa: BLE001 - the reason goes into the skip message
            pytest.skip(f"embedded model could not be provisioned: {exc}")
    return cached_path(DEFAULT_MODEL)


def bundled_data_path(name: str) -> Path:
    """Folder of a bundled dataset, skipping the test when `adapt data ensure` could not provision it."""
    from base import paths

    folder = paths.data_dir() / name
    if not folder.exists():
        try:
            from runners.bundled import ensure_datasets
            ensure_datasets([name])
        except Exception as exc:  # noqa: BLE001
            pytest.skip(f"bundled dataset {name!r} could not be provisioned: {exc}")
    return folder


class HashingEmbedder:
    """A deterministic bag-of-words embedder (words hashed into `dim` buckets) implementing retrieval's Embedder
    protocol: texts sharing words are close, with no model to load. Tests only."""

    name = "hashing-bow"

    def __init__(self, dim: int = 256) -> None:
        self.dim = dim
        self.calls = 0  # texts embedded so far, so tests can tell a cached index from a rebuilt one

    def embed(self, texts):
        import hashlib
        import re

        import numpy as np

        self.calls += len(texts)
        rows = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in zip(rows, texts):
            for word in re.findall(r"\w+", text.lower()):
                row[int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dim] += 1.0
            row /= max(float(np.linalg.norm(row)), 1e-12)
        return rows


@pytest.fixture()
def hashing_embedder():
    return HashingEmbedder()

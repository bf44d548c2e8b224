"""Model provisioning and loading: local folders, clear errors, and the real embedded model offline."""
from __future__ import annotations

import pytest

from base.errors import AdaptError
from runners.models import EMBEDDED, list_models, load_model, model_digest, resolve_model_path


def test_local_folder_resolves_and_loads(tiny_model_dir):
    assert resolve_model_path(str(tiny_model_dir)) == str(tiny_model_dir)
    model, tokenizer = load_model(str(tiny_model_dir), "cpu")
    assert model.config.num_hidden_layers == 2 and tokenizer.pad_token is not None


def test_folder_without_config_is_a_clear_error(tmp_path):
    with pytest.raises(AdaptError, match="no config.json"):
        resolve_model_path(str(tmp_path))


def test_unprovisioned_embedded_model_says_how_to_get_it():
    with pytest.raises(AdaptError) as caught:
        resolve_model_path("smollm2-135m-instruct", provision=False)
    assert "adapt models ensure" in caught.value.hint


def test_unreachable_hub_id_is_a_clear_error():
    with pytest.raises(AdaptError, match="not in the Hugging Face cache"):
        load_model("no-such-org/no-such-model-xyz", "cpu")


def test_list_shows_embedded_models_uncached():
    rows = {row["name"]: row for row in list_models()}
    assert set(rows) == set(EMBEDDED)
    assert rows["smollm2-135m-instruct"]["default"] and not rows["smollm2-135m-instruct"]["cached"]


def test_digest_changes_with_config(tiny_model_dir, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_model_dir, copy)
    assert model_digest(str(copy)) == model_digest(str(tiny_model_dir))
    (copy / "config.json").write_text((copy / "config.json").read_text().replace('"num_hidden_layers": 2', '"num_hidden_layers": 3'))
    assert model_digest(str(copy)) != model_digest(str(tiny_model_dir))


@pytest.mark.integration
def test_real_embedded_model_generates_offline(real_model_path):
    from runners.prompting import render_prompt
    from runners.scoring import generate

    model, tokenizer = load_model(str(real_model_path), "cpu")
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(134.5e6, rel=0.01)
    prompt = render_prompt(tokenizer, [{"role": "user", "content": "What is the capital of France?"}])
    answers, _ = generate(model, tokenizer, [prompt], max_new_tokens=12)
    assert "paris" in answers[0].lower()


@pytest.mark.parametrize("damage", ["missing", "unexpected"])
def test_gguf_conversion_loads_strictly(damage, monkeypatch, tmp_path, tiny_tokenizer):
    """A weight the GGUF lacks (or one the architecture does not have) is an error, never a random tensor."""
    import transformers

    from runners import models
    from tests.conftest import build_tiny_model

    full = build_tiny_model(tiny_tokenizer)
    weights = dict(full.state_dict())
    if damage == "missing":
        weights.pop("model.layers.0.mlp.down_proj.weight")
    else:
        weights["model.layers.0.extra.weight"] = weights["model.norm.weight"]
    loaded = type("Loaded", (), {"state_dict": lambda self: weights})()
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda *args, **kwargs: tiny_tokenizer)
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", lambda *args, **kwargs: loaded)
    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", lambda *args, **kwargs: full.config)
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_config", lambda config, **kwargs: build_tiny_model(tiny_tokenizer))
    with pytest.raises(AdaptError, match="does not convert cleanly"):
        models._convert(tmp_path / "model.gguf", tmp_path / "converted")
    assert not (tmp_path / "converted").exists()

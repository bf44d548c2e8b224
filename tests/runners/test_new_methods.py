"""Each new method on the tiny model, checked for doing what it claims rather than silently nothing: the weights it
trains move, the weights it freezes do not, the model's output changes, and its trainable count is peft's own."""
from __future__ import annotations

import json

import pytest

from base.errors import AdaptError
from base.plan import (FreezeSettings, GaloreSettings, LlamaAdapterSettings, LoraSettings, PrefixTuningSettings,
                       PTuningSettings)
from runners import training
from runners.adapters import peft_model
from runners.freeze import last_blocks_trainable
from runners.galore import galore_optimizer
from runners.llama_adapter import llama_adapter_model
from runners.lora import lora_model

pytestmark = pytest.mark.usefixtures("one_thread")

PAIRS = [("Text: the movie was great\nLabel:", " positive"), ("Text: a terrible boring film\nLabel:", " negative"),
         ("Text: the acting was wonderful\nLabel:", " positive"), ("Text: awful dialogue\nLabel:", " negative")] * 2
STEPS = dict(max_steps=3, batch_size=4, max_length=64, eval_fraction=0.0, warmup_ratio=0.0, lr_scheduler="constant")


def snapshot(model):
    return {name: param.detach().clone() for name, param in model.named_parameters()}


def logits(model, tokenizer):
    import torch

    batch = tokenizer(["Text: the movie was great\nLabel:"], return_tensors="pt")
    with torch.no_grad():
        return model(**batch).logits[0, -1].clone()


def train_and_check(model, tokenizer, settings, make_optimizer=None):
    """Train a few steps; assert trained weights moved, frozen ones did not and the output changed."""
    import torch

    before, output_before = snapshot(model), logits(model, tokenizer)
    trainable = {name for name, param in model.named_parameters() if param.requires_grad}
    assert trainable, "nothing is trainable"
    training.train(model, tokenizer, PAIRS, settings, make_optimizer=make_optimizer)
    after = snapshot(model)
    moved = {name for name in before if not torch.equal(before[name], after[name])}
    assert moved == trainable, (sorted(trainable - moved)[:3], sorted(moved - trainable)[:3])
    assert not torch.allclose(output_before, logits(model, tokenizer), atol=1e-6)
    return trainable


def peft_count(model) -> int:
    return model.get_nb_trainable_parameters()[0]


@pytest.mark.parametrize("variant", [{"use_dora": True}, {"use_rslora": True}, {"init": "gaussian"},
                                     {"init": "pissa"}, {"init": "olora"}], ids=["dora", "rslora", "gaussian", "pissa", "olora"])
def test_lora_variants_train_only_their_adapters(variant, tiny_model, tiny_tokenizer):
    settings = LoraSettings(learning_rate=1e-2, target_modules=["q_proj", "v_proj"], **STEPS, **variant)
    model = lora_model(tiny_model, settings)
    names = train_and_check(model, tiny_tokenizer, settings)
    assert sum(p.numel() for n, p in model.named_parameters() if n in names) == peft_count(model)
    if variant.get("use_dora"):
        assert any("lora_magnitude_vector" in name for name in names)  # DoRA's learned magnitudes are trained too


@pytest.mark.parametrize("init", ["pissa", "olora"])
def test_pissa_and_olora_save_a_lora_that_applies_to_the_unchanged_base(init, tiny_model, tiny_tokenizer, tiny_model_dir,
                                                                        tmp_path):
    """They change the base weights at init; the saved adapter must reproduce the trained model on the original base."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    settings = LoraSettings(learning_rate=1e-2, target_modules=["q_proj", "v_proj"], init=init, **STEPS)
    model = lora_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir), settings)
    training.train(model, tiny_tokenizer, PAIRS, settings, save_to=tmp_path / "adapter")
    assert json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())["init_lora_weights"] is True
    reloaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), tmp_path / "adapter")
    model.eval()
    assert torch.allclose(logits(model, tiny_tokenizer), logits(reloaded, tiny_tokenizer), atol=1e-4)


@pytest.mark.parametrize("settings", [PrefixTuningSettings(num_virtual_tokens=4, **STEPS),
                                      PrefixTuningSettings(num_virtual_tokens=4, projection=True, encoder_hidden_size=16, **STEPS),
                                      PTuningSettings(num_virtual_tokens=4, encoder_hidden_size=16, **STEPS)],
                         ids=["prefix", "prefix-projected", "p_tuning"])
def test_prompt_methods_train_their_prompts_only(settings, tiny_model, tiny_tokenizer):
    model = peft_model(tiny_model, settings)
    names = train_and_check(model, tiny_tokenizer, settings)
    assert all("prompt_encoder" in name for name in names)
    assert sum(p.numel() for n, p in model.named_parameters() if n in names) == peft_count(model)


def test_prefix_tuning_has_a_prefix_in_every_layer(tiny_model, tiny_tokenizer):
    model = peft_model(tiny_model, PrefixTuningSettings(num_virtual_tokens=4))
    config = tiny_model.config
    kv_dim = config.num_key_value_heads * config.hidden_size // config.num_attention_heads
    assert peft_count(model) == 4 * config.num_hidden_layers * 2 * kv_dim  # a key and a value prefix per layer


def test_llama_adapter_trains_gated_prompts_in_the_top_layers(tiny_model, tiny_tokenizer):
    settings = LlamaAdapterSettings(adapter_len=3, adapter_layers=99, learning_rate=5e-2, **STEPS)
    model = llama_adapter_model(tiny_model, settings)
    names = train_and_check(model, tiny_tokenizer, settings)
    assert sum(p.numel() for n, p in model.named_parameters() if n in names) == peft_count(model)
    assert peft_count(model) == 2 * (3 * 64 + 1)  # capped at the model's 2 layers: prompts + one gate each


def test_llama_adapter_refuses_other_architectures(tiny_tokenizer):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    model = Qwen2ForCausalLM(Qwen2Config(vocab_size=len(tiny_tokenizer), hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1))
    with pytest.raises(AdaptError, match="llama, mistral models .*; this one is 'qwen2'"):
        llama_adapter_model(model, LlamaAdapterSettings())


def test_freeze_trains_the_last_blocks_and_head_only(tiny_model, tiny_tokenizer):
    settings = FreezeSettings(layers=1, learning_rate=1e-3, **STEPS)
    model = last_blocks_trainable(tiny_model, settings)
    names = train_and_check(model, tiny_tokenizer, settings)
    assert any(name.startswith("model.layers.1.") for name in names)
    assert not any(name.startswith("model.layers.0.") for name in names)
    assert {"model.norm.weight", "model.embed_tokens.weight"} <= names  # the final norm; the head is tied to the embeddings
    with pytest.raises(AdaptError, match="last 3 blocks but the model has 2"):
        last_blocks_trainable(tiny_model, FreezeSettings(layers=3))


def test_galore_projects_the_block_matrices_and_trains_everything(tiny_model, tiny_tokenizer):
    from galore_torch import GaLoreAdamW

    settings = GaloreSettings(rank=4, update_proj_gap=2, learning_rate=1e-3, **STEPS)
    model = tiny_model.requires_grad_(True)
    optimizer = galore_optimizer(model, settings)
    assert isinstance(optimizer, GaLoreAdamW)
    regular, projected = optimizer.param_groups
    assert projected["rank"] == 4 and len(projected["params"]) == 2 * 7  # q k v o gate up down in each of 2 blocks
    assert not any(p.ndim == 2 and p.shape[0] == len(tiny_tokenizer) for p in projected["params"])  # not the embeddings
    train_and_check(model, tiny_tokenizer, settings, make_optimizer=galore_optimizer)
    fresh = galore_optimizer(model, settings)
    model.zero_grad()
    loss = model(**tiny_tokenizer(["Text: great\nLabel: positive"], return_tensors="pt"),
                 labels=tiny_tokenizer(["Text: great\nLabel: positive"], return_tensors="pt")["input_ids"]).loss
    loss.backward()
    fresh.step()
    big = next(p for p in fresh.param_groups[1]["params"] if min(p.shape) > 4)
    assert fresh.state[big]["exp_avg"].numel() < big.numel()  # Adam's moments live in the rank-4 subspace

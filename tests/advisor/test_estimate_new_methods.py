"""The estimates of the new methods: trainable counts equal peft's on a real (tiny) model, and the memory and time
figures order the methods the way their designs say they should."""
from __future__ import annotations

import pytest

from advisor import estimate as est
from advisor.hardware import GPUS
from base.plan import FreezeSettings, LlamaAdapterSettings, PrefixTuningSettings, PTuningSettings

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_shape(model) -> est.ModelShape:
    config = model.config
    return est.ModelShape("tiny", config.hidden_size, config.num_hidden_layers, config.num_attention_heads,
                          config.num_key_value_heads, config.intermediate_size, config.vocab_size, True)


@pytest.mark.parametrize("strategy, settings, setup", [
    ("prefix_tuning", PrefixTuningSettings(num_virtual_tokens=5), {"num_virtual_tokens": 5}),
    ("p_tuning", PTuningSettings(num_virtual_tokens=5, encoder_hidden_size=24), {"num_virtual_tokens": 5, "encoder_hidden": 24}),
    ("llama_adapter", LlamaAdapterSettings(adapter_len=3, adapter_layers=1), {"adapter_len": 3, "adapter_layers": 1}),
])
def test_peft_method_counts_match_peft(strategy, settings, setup, tiny_model):
    from runners.adapters import peft_model

    counted = peft_model(tiny_model, settings).get_nb_trainable_parameters()[0]
    assert est.trainable_params(tiny_shape(tiny_model), est.TrainSetup(strategy=strategy, **setup)) == counted


def test_freeze_and_galore_counts_match_the_model(tiny_model):
    from runners.freeze import last_blocks_trainable

    shape = tiny_shape(tiny_model)
    assert est.trainable_params(shape, est.TrainSetup(strategy="galore")) == sum(p.numel() for p in tiny_model.parameters())
    last_blocks_trainable(tiny_model, FreezeSettings(layers=1))
    trained = sum(p.numel() for p in tiny_model.parameters() if p.requires_grad)
    assert est.trainable_params(shape, est.TrainSetup(strategy="freeze", freeze_layers=1)) == trained


def test_costs_order_the_methods_as_designed():
    shape, gpu = est.model_shape("llama-3.1-8b"), GPUS["A100-80GB"]
    setup, load = est.TrainSetup(seq_len=512, batch=4), est.Workload(train_tokens=5e6)

    def estimate(strategy):
        return est.estimate_strategy(strategy, shape, setup, load, gpu, [gpu])

    full, galore, freeze, lora, features = (estimate(s) for s in ("full_ft", "galore", "freeze", "lora", "feature_based"))
    assert galore.peak_memory_gib < full.peak_memory_gib - 20  # AdamW's 8B x 2 moments shrink to rank-128 ones
    assert galore.trainable_params == full.trainable_params
    assert freeze.train_hours < full.train_hours and freeze.peak_memory_gib < full.peak_memory_gib
    # one forward pass and no backward (half of LoRA's 4N a token), over batches padded to their longest (1.58x)
    assert 0 < features.train_hours < lora.train_hours * 0.8
    assert features.trainable_params == shape.hidden + 1
    dpo = estimate("dpo")  # a LoRA policy, plus the reference model's forward on every pair
    assert dpo.trainable_params == lora.trainable_params and dpo.train_hours > lora.train_hours
    for strategy in ("prefix_tuning", "p_tuning", "llama_adapter"):
        assert estimate(strategy).peak_memory_gib < full.peak_memory_gib and estimate(strategy).train_hours > 0

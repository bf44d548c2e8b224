"""PEFT settings map onto peft's own config classes: every mapped name exists there, and the configs are what
the runners used to build by hand."""
from __future__ import annotations

import dataclasses

import peft
import pytest

from base import registry
from base.plan import LORA_INITS, IA3Settings, LoraSettings, PeftSettings, PromptTuningSettings, QLoraSettings
from runners.adapters import peft_config

PEFT_ENTRIES = [entry.name for entry in registry.entries() if issubclass(entry.settings, PeftSettings)]


def test_every_peft_strategy_is_mapped():
    assert PEFT_ENTRIES == ["lora", "qlora", "ia3", "prompt_tuning", "prefix_tuning", "p_tuning", "llama_adapter", "dpo"]


@pytest.mark.parametrize("strategy", PEFT_ENTRIES)
def test_mapped_names_are_fields_of_the_peft_config(strategy):
    settings = registry.get(strategy).settings
    config_fields = {field.name for field in dataclasses.fields(getattr(peft, settings.peft_config))}
    assert set(settings.peft_fields.values()) <= config_fields
    assert set(settings.peft_fields) <= set(settings.model_fields)


def test_configs_match_the_hand_written_ones():
    for settings in (LoraSettings(r=4, alpha=8), QLoraSettings()):
        expected = peft.LoraConfig(r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                                   target_modules=list(settings.target_modules), task_type="CAUSAL_LM")
        assert peft_config(settings) == expected
    ia3 = IA3Settings()
    assert peft_config(ia3) == peft.IA3Config(target_modules=list(ia3.target_modules), task_type="CAUSAL_LM",
                                              feedforward_modules=list(ia3.feedforward_modules))
    tuning = peft_config(PromptTuningSettings(num_virtual_tokens=5), prompt_tuning_init=peft.PromptTuningInit.SAMPLE_VOCAB)
    assert tuning.num_virtual_tokens == 5 and tuning.prompt_tuning_init == peft.PromptTuningInit.SAMPLE_VOCAB


def test_lora_variants_reach_peft():
    config = peft_config(LoraSettings(use_dora=True, use_rslora=True, init="pissa"))
    assert config.use_dora and config.use_rslora and config.init_lora_weights == "pissa"
    assert peft_config(LoraSettings()).init_lora_weights is True  # `default` is peft's own default


def test_every_lora_init_is_one_peft_accepts():
    for init in LORA_INITS:
        peft.LoraConfig(init_lora_weights=LoraSettings(init=init).peft_values.get("init", {}).get(init, init))

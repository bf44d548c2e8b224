"""The built-in strategies, one registry entry each, cheapest first (the order a report lists them).

Adding a method: write `runners/<name>.py` with `run(spec) -> RunResult`, give it a settings class
(`strategy: Literal["<name>"]`; PEFT settings map onto peft's config class through `peft_config`), and add
one entry here. The plan format, the advisor's rules and estimates, compare and the report's plots read it.
"""
from __future__ import annotations

from base.plan import (CptSettings, DpoSettings, FeatureBasedSettings, FewShotSettings, FreezeSettings, FullFTSettings, GaloreSettings,
                       IA3Settings, LlamaAdapterSettings, LoraSettings, PrefixTuningSettings, PromptTuningSettings,
                       PTuningSettings, QLoraSettings, RagSettings, ZeroShotSettings)
from base.registry import Strategy, register

# Colours are colour-blind-friendly (Okabe-Ito, then Tableau).
register(
    Strategy("zero_shot", ZeroShotSettings, "runners.zero_shot:run",
             "the base model prompted with the task alone",
             prior=1, colour="#7f7f7f"),
    Strategy("few_shot", FewShotSettings, "runners.few_shot:run",
             "the base model prompted with k solved examples (in-context learning)",
             needs=("train",), estimate="demos", prior=2, colour="#56b4e9"),
    Strategy("rag", RagSettings, "runners.rag:run",
             "the base model prompted with passages retrieved from your corpus",
             needs=("corpus",), estimate="passages", prior=.5, colour="#009e73"),
    Strategy("feature_based", FeatureBasedSettings, "runners.feature_based:run",
             "the frozen model's hidden states fed to a logistic regression (no generation)",
             needs=("train",), estimate="features", prior=.5, colour="#bcbd22", task_types=("classification",)),
    Strategy("lora", LoraSettings, "runners.lora:run",
             "low-rank adapters trained on your labelled examples",
             needs=("train",), changes_weights=True, estimate="lora", prior=2, colour="#e69f00"),
    Strategy("qlora", QLoraSettings, "runners.qlora:run",
             "LoRA on a 4-bit (nf4) quantised base model",
             needs=("train",), changes_weights=True, estimate="qlora", prior=1.5, colour="#d55e00"),
    Strategy("ia3", IA3Settings, "runners.ia3:run",
             "IA3: learned rescaling vectors, fewer parameters than LoRA",
             needs=("train",), changes_weights=True, estimate="ia3", prior=1, colour="#cc79a7"),
    Strategy("prompt_tuning", PromptTuningSettings, "runners.prompt_tuning:run",
             "learned soft-prompt embeddings, base weights frozen",
             needs=("train",), changes_weights=True, estimate="soft_prompt", prior=.5, colour="#f0e442"),
    Strategy("prefix_tuning", PrefixTuningSettings, "runners.peft_methods:run",
             "prefix tuning / P-tuning v2: trained key-value prefixes in every layer, base weights frozen",
             needs=("train",), changes_weights=True, estimate="prefix", prior=.25, colour="#aec7e8"),
    Strategy("p_tuning", PTuningSettings, "runners.peft_methods:run",
             "P-tuning: soft-prompt embeddings produced by a small trained encoder",
             needs=("train",), changes_weights=True, estimate="p_tuning", prior=0, colour="#98df8a"),
    Strategy("llama_adapter", LlamaAdapterSettings, "runners.llama_adapter:run",
             "LLaMA-Adapter: zero-gated learned prompts in the top attention layers (llama-architecture models)",
             needs=("train",), changes_weights=True, estimate="llama_adapter", prior=0, colour="#ff9896"),
    Strategy("freeze", FreezeSettings, "runners.freeze:run",
             "only the last few transformer blocks and the head trained, the rest frozen",
             needs=("train",), changes_weights=True, estimate="freeze", prior=.25, colour="#c5b0d5"),
    Strategy("galore", GaloreSettings, "runners.galore:run",
             "every weight trained, with GaLore's low-rank gradient projection to shrink optimizer memory",
             needs=("train",), changes_weights=True, estimate="galore", prior=0, colour="#9467bd"),
    Strategy("dpo", DpoSettings, "runners.dpo:run",
             "preference tuning (DPO) with LoRA on pairs of a preferred and a rejected answer",
             needs=("preferences",), changes_weights=True, estimate="dpo", prior=0, colour="#e377c2"),
    Strategy("full_ft", FullFTSettings, "runners.full_ft:run",
             "every weight of the model trained on your labelled examples",
             needs=("train",), changes_weights=True, estimate="full", prior=.5, colour="#0072b2"),
    Strategy("cpt", CptSettings, "runners.cpt:run",
             "continued pre-training on your unlabelled corpus, then the task prompt",
             needs=("corpus",), changes_weights=True, estimate="full", prior=0, colour="#8c564b"),
)

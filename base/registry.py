"""The adaptation strategies adaptlab knows, in the order a report lists them (cheapest first)."""
from __future__ import annotations

from enum import Enum


class Strategy(str, Enum):
    zero_shot = "zero_shot"
    few_shot = "few_shot"
    rag = "rag"
    lora = "lora"
    qlora = "qlora"
    ia3 = "ia3"
    prompt_tuning = "prompt_tuning"
    full_ft = "full_ft"
    cpt = "cpt"

    @property
    def changes_weights(self) -> bool:
        """Strategies whose model differs from the base one, so forgetting is worth measuring."""
        return self in WEIGHT_CHANGING

    @property
    def pays_per_query(self) -> bool:
        """In-context strategies pay for their extra prompt tokens on every query."""
        return self in (Strategy.few_shot, Strategy.rag)


WEIGHT_CHANGING = frozenset(
    {Strategy.lora, Strategy.qlora, Strategy.ia3, Strategy.prompt_tuning, Strategy.full_ft, Strategy.cpt}
)

DESCRIPTIONS = {
    Strategy.zero_shot: "the base model prompted with the task alone",
    Strategy.few_shot: "the base model prompted with k solved examples (in-context learning)",
    Strategy.rag: "the base model prompted with passages retrieved from your corpus",
    Strategy.lora: "low-rank adapters trained on your labelled examples",
    Strategy.qlora: "LoRA on a 4-bit (nf4) quantised base model",
    Strategy.ia3: "IA3: learned rescaling vectors, fewer parameters than LoRA",
    Strategy.prompt_tuning: "learned soft-prompt embeddings, base weights frozen",
    Strategy.full_ft: "every weight of the model trained on your labelled examples",
    Strategy.cpt: "continued pre-training on your unlabelled corpus, then the task prompt",
}

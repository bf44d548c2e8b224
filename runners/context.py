"""Prompts that fit the model: a prompt longer than the context, less the tokens its answer needs, keeps its last
tokens (lm-eval truncates the same way: the end holds the question and the answer cue), and is counted."""
from __future__ import annotations

from typing import Any, Sequence

UNBOUNDED = 1_000_000  # tokenizers without a limit report a huge model_max_length


def context_length(model: Any, tokenizer: Any) -> int | None:
    """Tokens the model attends over: its config's position limit (else the tokenizer's), less prompt-tuning's
    virtual tokens, which take room in every row."""
    config = getattr(model, "config", None)
    limit = getattr(config, "max_position_embeddings", None)
    if not isinstance(limit, int):
        limit = tokenizer.model_max_length if tokenizer.model_max_length < UNBOUNDED else None
    if limit is None:
        return None
    peft_config = getattr(model, "active_peft_config", None)
    return limit - int(getattr(peft_config, "num_virtual_tokens", 0) or 0)


def fit_prompts(tokenizer: Any, prompts: Sequence[str], budget: int | None) -> tuple[list[str], list[bool]]:
    """Each prompt cut to its last `budget` tokens when longer; also says which ones were cut."""
    if budget is None:
        return list(prompts), [False] * len(prompts)
    budget = max(budget, 1)
    fitted, cut = [], []
    for prompt in prompts:
        ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        cut.append(len(ids) > budget)
        fitted.append(tokenizer.decode(ids[-budget:]) if cut[-1] else prompt)
    return fitted, cut

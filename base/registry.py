"""The strategy registry: the one place a strategy is described.

An entry says everything the rest of adaptlab needs to know about a strategy: its settings class (plan
validation), its runner (compare), the data it needs (plan checks, advised plans), whether it changes the
model's weights (forgetting checks, report sentences), which estimator formula sizes it (advise), its prior
in the rule table, and its colour in plots. The built-in entries are in `base.strategies`, cheapest first:
the order the advisor breaks ties in and the report lists runs in.

Adding a method is a runner module and one `register(Strategy(...))`. This module imports nothing of ours.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

NEEDS = ("train", "corpus", "preferences")  # train: labelled examples; corpus: documents; preferences: pairs (DPO)
# Estimator formulas (advisor.estimate): prompting ones differ in the extra prompt tokens a query pays,
# training ones in what is trained and how the base weights are held.
# `features` is a forward pass over the train set plus a small classifier fitted outside the model: not a training run.
ESTIMATES = ("prompt", "demos", "passages", "features", "lora", "qlora", "ia3", "soft_prompt", "prefix", "p_tuning",
             "llama_adapter", "dpo", "freeze", "galore", "full")
TRAINING_ESTIMATES = ("lora", "qlora", "ia3", "soft_prompt", "prefix", "p_tuning", "llama_adapter", "dpo", "freeze",
                      "galore", "full")
TASK_TYPES = ("classification", "qa", "multiple_choice")
FALLBACK_COLOUR = "#17becf"


@dataclass(frozen=True)
class Strategy:
    name: str
    settings: type  # pydantic model with `strategy: Literal[name]`; PEFT settings map onto peft's config class
    runner: str  # "module:function" taking a RunSpec, returning a RunResult; imported only when it runs
    description: str  # one line a stakeholder understands
    needs: tuple[str, ...] = ()  # which of NEEDS a task must provide
    changes_weights: bool = False  # the adapted model differs from the base: forgetting is worth measuring
    estimate: str = "prompt"  # one of ESTIMATES
    prior: float = 0.0  # the rule table's score before any answer
    colour: str = FALLBACK_COLOUR  # plots: one colour per strategy in every figure
    task_types: tuple[str, ...] = TASK_TYPES  # the task types it can run on (plan checks, the advisor)

    def __post_init__(self) -> None:
        tag = getattr(self.settings, "model_fields", {}).get("strategy")
        if tag is None or tag.default != self.name:
            raise ValueError(f"{self.settings.__name__} must declare `strategy: Literal[{self.name!r}] = {self.name!r}`")
        if unknown := set(self.needs) - set(NEEDS):
            raise ValueError(f"strategy {self.name!r} needs unknown data {sorted(unknown)}; choose from {NEEDS}")
        if self.estimate not in ESTIMATES:
            raise ValueError(f"strategy {self.name!r}: estimate {self.estimate!r} is not one of {ESTIMATES}")
        if unknown := set(self.task_types) - set(TASK_TYPES):
            raise ValueError(f"strategy {self.name!r}: unknown task types {sorted(unknown)}; choose from {TASK_TYPES}")
        if ":" not in self.runner:
            raise ValueError(f"strategy {self.name!r}: runner must be 'module:function', got {self.runner!r}")

    @property
    def trains(self) -> bool:
        return self.estimate in TRAINING_ESTIMATES


_REGISTRY: dict[str, Strategy] = {}
_LISTENERS: list[Callable[[], None]] = []


def register(*entries: Strategy) -> None:
    """Add (or replace) strategies; models whose schema lists the strategies are rebuilt."""
    for entry in entries:
        _REGISTRY[entry.name] = entry
    _changed()


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)
    _changed()


def on_change(listener: Callable[[], None]) -> None:
    """Call `listener` whenever the set of strategies changes (the plan schema rebuilds its union)."""
    _LISTENERS.append(listener)
    listener()


def _changed() -> None:
    for listener in _LISTENERS:
        listener()


def get(name: str) -> Strategy:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown strategy {name!r}; known: {', '.join(_REGISTRY)}") from None


def known(name: str) -> bool:
    return name in _REGISTRY


def entries() -> tuple[Strategy, ...]:
    """Every strategy, cheapest first."""
    return tuple(_REGISTRY.values())


def names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def order(name: str) -> int:
    """A strategy's place in the cheapest-first order (unknown names go last)."""
    return list(_REGISTRY).index(name) if name in _REGISTRY else len(_REGISTRY)


def runner(name: str) -> Callable[..., Any]:
    """Import a runner only when it is needed (a plan without LoRA never imports peft)."""
    module_name, function = get(name).runner.split(":")
    return getattr(importlib.import_module(module_name), function)


class AnyRegisteredSettings:
    """Pydantic marker: a strategy's settings, validated by the class its `strategy` tag names in the registry
    (a discriminated union over whatever is registered when the schema is built)."""

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema

        if not _REGISTRY:
            return handler(source)
        choices = {entry.name: handler.generate_schema(entry.settings) for entry in _REGISTRY.values()}
        return core_schema.tagged_union_schema(choices, discriminator="strategy")

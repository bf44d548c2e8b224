"""The adaptation flowchart as data: an ordered table of rules, each a condition over the answers, its effect
on every strategy's score (a number, or OUT to rule it out) and one line a stakeholder understands.
Priors say what wins when nothing is known (each strategy's registry entry holds its own); contradictions are
answers that cannot both hold. Rules that speak of a kind of strategy ("needs a corpus", "trains on labels")
read the registry, so a newly registered strategy is scored, ruled out and estimated like its kind.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Union

from advisor.questions import Answers
from base import registry

ZS, FS, RAG, LORA, QLORA, IA3, PT, FULL, CPT = (
    "zero_shot", "few_shot", "rag", "lora", "qlora", "ia3", "prompt_tuning", "full_ft", "cpt")
FEATURES, PREFIX, PTUNE, LLAMA_ADAPTER, FREEZE, GALORE, DPO = (
    "feature_based", "prefix_tuning", "p_tuning", "llama_adapter", "freeze", "galore", "dpo")
RAG_LORA, CPT_LORA = "rag+lora", "cpt+lora"
OUT = "out"


@dataclass(frozen=True)
class Combination:
    """Two strategies used together (compare runs them as their parts)."""

    prior: float
    description: str


COMBINATIONS = {
    RAG_LORA: Combination(.5, "retrieval for the facts + LoRA for the behaviour"),
    CPT_LORA: Combination(0, "continued pre-training on the corpus, then LoRA on the labels"),
}


def strategies() -> tuple[str, ...]:
    """Every strategy the advisor ranks, cheapest first (ties go left): the registry, then the combinations."""
    return registry.names() + tuple(COMBINATIONS)


def prior() -> dict[str, float]:
    return {**{entry.name: entry.prior for entry in registry.entries()},
            **{name: combination.prior for name, combination in COMBINATIONS.items()}}


def _parts(strategy: str) -> list[registry.Strategy]:
    return [registry.get(part) for part in strategy.split("+")]


def supervised() -> tuple[str, ...]:
    """Strategies that train weights on labelled examples (alone or as part of a combination)."""
    return tuple(s for s in strategies() if any(p.changes_weights and "train" in p.needs for p in _parts(s)))


def needs_labels() -> tuple[str, ...]:
    """Strategies that read labelled examples (train on them, show them or fit a classifier to them)."""
    return tuple(s for s in strategies() if any("train" in p.needs for p in _parts(s)))


def classification_only() -> tuple[str, ...]:
    """Strategies that run on classification tasks alone (feature_based: a classifier over fixed labels)."""
    return tuple(s for s in strategies() if any(p.task_types == ("classification",) for p in _parts(s)))


def needs_preferences() -> tuple[str, ...]:
    return tuple(s for s in strategies() if any("preferences" in p.needs for p in _parts(s)))


def needs_corpus() -> tuple[str, ...]:
    return tuple(s for s in strategies() if any("corpus" in p.needs for p in _parts(s)))


def describe(strategy: str) -> str:
    return COMBINATIONS[strategy].description if strategy in COMBINATIONS else registry.get(strategy).description


Effect = dict[str, Union[float, str]]


@dataclass(frozen=True)
class Rule:
    id: str
    when: Callable[[Answers], bool]
    effects: Effect | Callable[[], Effect]  # a function when the effect reads the registry
    because: str

    @property
    def effect(self) -> Effect:
        return self.effects() if callable(self.effects) else self.effects


def out(*strategies: str) -> dict[str, str]:
    return dict.fromkeys(strategies, OUT)


def n(a: Answers) -> int:
    return -1 if a.labelled_examples is None else a.labelled_examples  # -1: unknown, so no count rule fires


def below(value: float | None, limit: float) -> bool:
    """An answered number under the limit (unknown never counts as small)."""
    return value is not None and value < limit


def volatile(a: Answers) -> bool:
    return a.knowledge_changes in ("weekly", "daily")


def behaviour(a: Answers) -> bool:
    return a.need in ("skill", "format", "style") or bool(a.strict_format)


def no_corpus(a: Answers) -> bool:
    return a.corpus_available is False


def cheap(a: Answers) -> bool:
    """No GPU, or a budget under $20 / an hour."""
    return a.cpu_only or below(a.budget_usd, 20) or below(a.budget_hours, 1)


R = Rule
RULES: tuple[Rule, ...] = (  # id, when, effect (+/- points or OUT), because
    R("no_labels", lambda a: n(a) == 0, lambda: {ZS: 1, **out(*needs_labels())},
      "Without labelled examples there is nothing to show in a prompt or to train on."),
    R("no_corpus", no_corpus, lambda: out(*needs_corpus()), "RAG and continued pre-training need a document corpus, and there is none."),
    R("few_labels", lambda a: 0 < n(a) < 100, {FS: 3, LORA: -1, QLORA: -1, IA3: -1, FULL: -3, PREFIX: -1, PTUNE: -1, GALORE: -3},
      "Under ~100 examples, demonstrations in the prompt usually match training, at no training cost."),
    R("hundreds_of_labels", lambda a: 100 <= n(a) < 1000, {LORA: 2, QLORA: 1.5, IA3: 1, PT: .5, FS: 1, CPT_LORA: 1},
      "Hundreds of examples are enough for a small adapter to learn the task."),
    R("thousands_of_labels", lambda a: n(a) >= 1000, {LORA: 3, QLORA: 2.5, IA3: 1, FULL: 1.5, FS: -1, CPT_LORA: 1},
      "Thousands of examples teach more than the few that fit in a prompt."),
    R("lots_of_labels", lambda a: n(a) >= 50_000, {FULL: 3},
      "With tens of thousands of examples, full fine-tuning can use its extra capacity."),
    R("weak_base", lambda a: below(a.zero_shot_accuracy, .5), {ZS: -3, FS: -1, LORA: 1, FULL: 1},
      "The base model is below 50% zero-shot: prompting rarely closes that gap, and tuning needs hundreds of examples."),
    R("strong_base", lambda a: (a.zero_shot_accuracy or 0) >= .85, {ZS: 4, FS: 1},
      "The base model already scores 85%+ zero-shot: adapting it may not pay for itself."),
    R("volatile_knowledge", volatile, {RAG: 5, RAG_LORA: 2, LORA: -2, QLORA: -2, FULL: -3, CPT: -4, CPT_LORA: -4},
      "Facts that change weekly or faster belong in an index you update in minutes, not in weights you retrain."),
    R("stable_knowledge", lambda a: a.need == "knowledge" and a.knowledge_changes in ("never", "monthly"), {RAG: 2, CPT: 1, CPT_LORA: 1},
      "Stable facts can live in a retrieval index or be trained into the weights."),
    R("citations", lambda a: bool(a.citations), {RAG: 3, RAG_LORA: 3}, "Only retrieval can point to the passage an answer came from."),
    R("behaviour", lambda a: a.need in ("skill", "format", "style"), {LORA: 2, QLORA: 1.5, IA3: 1, FULL: 1, RAG: -2},
      "Skills, formats and styles are behaviour: they live in the weights, and retrieval does not teach them."),
    R("strict_format", lambda a: bool(a.strict_format), {LORA: 1, QLORA: 1, FS: .5},
      "A strict output format is learned most reliably by tuning on examples of it."),
    R("facts_and_behaviour", lambda a: (volatile(a) or bool(a.citations)) and behaviour(a) and n(a) >= 100, {RAG_LORA: 5},
      "Changing or cited facts plus a learned behaviour: retrieve the facts, tune the behaviour."),
    R("new_vocabulary", lambda a: bool(a.new_vocabulary) and (a.corpus_tokens or 0) >= 5e6, {CPT: 4, CPT_LORA: 5, FS: -1, RAG: -1},
      "A new language or vocabulary is learned from lots of raw text: continued pre-training on your corpus."),
    R("small_corpus", lambda a: a.corpus_tokens is not None and 0 < a.corpus_tokens < 1e6, {CPT: -3, CPT_LORA: -3},
      "Under ~1M tokens, continued pre-training has too little text to move the model."),
    R("private_data", lambda a: bool(a.private_data), {RAG: 1, FULL: -1, CPT: -1},
      "Private text in an index can be deleted on request; trained into weights it cannot."),
    R("cpu_only", lambda a: a.cpu_only, {FULL: -2, CPT: -3, CPT_LORA: -3, QLORA: -1, GALORE: -3},
      "Without a GPU, whole-model training is slow and 4-bit quantisation only costs speed: small adapters or prompts fit."),
    R("tight_latency", lambda a: below(a.latency_ms, 501), {FS: -2, RAG: -2, RAG_LORA: -1, LORA: 1, QLORA: .5},
      "Demos and passages lengthen every prompt; adapters add no prompt tokens."),
    R("high_volume", lambda a: (a.queries_per_day or 0) >= 100_000, {FS: -2, RAG: -1, LORA: 1.5, QLORA: 1, IA3: .5},
      "At 100k+ queries a day, extra prompt tokens cost more than training once."),
    R("low_forgetting_tolerance", lambda a: a.forgetting_tolerance == "low",
      {FULL: -3, CPT: -4, CPT_LORA: -3, GALORE: -3, FREEZE: -1.5, LORA: -.5, FS: 1, RAG: 1, ZS: .5},
      "Full fine-tuning and CPT overwrite general abilities; adapters and prompts leave the base model intact."),
    R("high_forgetting_tolerance", lambda a: a.forgetting_tolerance == "high", {FULL: 1},
      "Only this task matters, so full fine-tuning may trade away general ability."),
    R("ship_in_days", lambda a: a.time_to_market == "days", {ZS: 1, FS: 2, RAG: 1, LORA: -1, FULL: -2, CPT: -3, CPT_LORA: -3},
      "Shipping in days favours what needs no training run."),
    R("small_budget", lambda a: below(a.budget_usd, 20) or below(a.budget_hours, 1), {FULL: -2, CPT: -3, CPT_LORA: -3, QLORA: .5},
      "A small compute budget rules out long whole-model runs."),
    R("noisy_labels", lambda a: a.label_quality == "low", {FULL: -2, LORA: -1, QLORA: -1, FS: 1},
      "Tuning memorises label noise; a few hand-picked demos avoid it."),
    R("short_context", lambda a: below(a.context_window, 2048), {FS: -2, RAG: -2, RAG_LORA: -1},
      "A short context window leaves little room for demos or passages."),
    R("not_classification", lambda a: a.task_type not in (None, "classification"), lambda: out(*classification_only()),
      "A feature-based classifier picks one of a fixed set of labels: it cannot answer questions or choices."),
    R("classify_cheaply", lambda a: a.task_type == "classification" and cheap(a), {FEATURES: 3.5},
      "Classifying on a tight budget: frozen hidden states + logistic regression is a cheap strong baseline (Peters et al. 2019)."),
    R("deep_prompts", lambda a: n(a) >= 1000, {PREFIX: 1.5, PTUNE: 1},
      "With thousands of examples, deep prompts in every layer match fine-tuning on NLU tasks (P-tuning v2, Liu et al. 2022)."),
    R("gated_instruction_adapter", lambda a: behaviour(a) and n(a) >= 100, {LLAMA_ADAPTER: 1.5},
      "LLaMA-Adapter's zero-init gates teach instruction following with ~1M weights, starting from the base (Zhang et al. 2023)."),
    R("last_layers", lambda a: n(a) >= 1000 and cheap(a), {FREEZE: 2},
      "Tuning only the top blocks keeps most of full fine-tuning's gain at a fraction of its backward cost (Lee et al. 2019)."),
    R("full_rank_low_memory", lambda a: n(a) >= 50_000 and a.gpu not in (None, "none"), {GALORE: 3},
      "Full-parameter learning when AdamW states do not fit: GaLore keeps them in a low-rank gradient subspace (Zhao et al. 2024)."),
    R("no_preference_pairs", lambda a: not a.preferences, lambda: out(*needs_preferences()),
      "DPO learns from pairs of a preferred and a rejected answer, and there are none."),
    R("preference_pairs", lambda a: bool(a.preferences), {DPO: 4},
      "Preference pairs rather than labels: DPO tunes on them directly, with no reward model (Rafailov et al. 2023)."),
)

CONTRADICTIONS: tuple[tuple[Callable[[Answers], bool], str], ...] = (
    (lambda a: volatile(a) and no_corpus(a), "Knowledge changes {knowledge_changes} but there is no corpus: RAG needs one and trained-in facts go stale — collect the documents."),
    (lambda a: bool(a.citations) and no_corpus(a), "Citations are required but there is no corpus to cite."),
    (lambda a: bool(a.new_vocabulary) and no_corpus(a), "A new vocabulary is learned from raw text, but there is no corpus."),
    (lambda a: behaviour(a) and n(a) == 0, "A skill, format or style is learned from examples, but there are none: write 20-50 and start with few-shot."),
    (lambda a: bool(a.train) and n(a) == 0, "A train file is given but labelled_examples is 0."),
    (lambda a: bool(a.corpus) and no_corpus(a), "A corpus path is given but has_corpus is no."),
    (lambda a: a.has_corpus is False and (a.corpus_tokens or 0) > 0, "corpus_tokens is set but has_corpus is no."),
    (lambda a: bool(a.private_data) and a.usd_per_1m_input_tokens is not None, "Data is private but priced per API token: make sure that endpoint runs on your premises."),
    (lambda a: a.time_to_market == "days" and (a.corpus_tokens or 0) >= 1e8, "Shipping in days leaves no time to continue pre-training on a corpus this large."),
)


def contradictions(answers: Answers) -> list[str]:
    return [message.format(**answers.__dict__) for check, message in CONTRADICTIONS if check(answers)]

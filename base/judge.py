"""The one judge of measured results: which run to use, by the same rules wherever the question is asked
(`adapt advise --results` re-ranks with it; `adapt report` writes its headline from it).

The rules, in order:
1. Forgetting costs what the user said it costs: utility = score - weight x lost general ability
   (lost = 1 - retained), with weight 1 / 0.5 / 0 for a low / medium / high forgetting tolerance, and 0 when
   no tolerance was stated (the report still names a significant drop; it does not decide for the user).
2. The best run has the highest utility (ties: the cheaper one).
3. A cheaper run whose utility lies inside the best run's 95% interval (shifted by the best run's own
   forgetting penalty) is recommended instead: the measured gap could be noise. The cheapest such run wins.
Cost is $ to train once and serve 1M queries when every candidate has it, else the registry's
cheapest-first order, so known and unknown costs are never mixed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable

from base import registry
from base.results import RunResult, RunStatus

FORGETTING_WEIGHT = {"low": 1.0, "medium": 0.5, "high": 0.0}


def _known(value: object) -> float | None:
    """A float, or None for missing, non-numeric and NaN values."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        return None
    return float(value)


@dataclass
class Candidate:
    """One strategy label as measured (averaged over tasks when it ran on several)."""

    label: str
    strategy: str
    metric: str
    score: float
    low: float | None = None
    high: float | None = None
    cost_usd: float | None = None  # train once + serve 1M queries
    usd_per_1m_queries: float | None = None
    retained: float | None = None  # share of the base model's general-benchmark score kept

    @property
    def order(self) -> int:
        return registry.order(self.strategy)


def _mean(values: list[float | None]) -> float | None:
    known = [value for value in values if value is not None]
    return sum(known) / len(known) if len(known) == len(values) and known else None


def _cost_usd(run: RunResult) -> float | None:
    parts = [_known(run.cost.get(key)) for key in ("usd_train", "usd_per_1m_queries")]
    known = [part for part in parts if part is not None]
    return sum(known) if known else None


def candidates(runs: Iterable[RunResult]) -> list[Candidate]:
    """One candidate per label from the successful runs that have their primary metric; several tasks are averaged."""
    grouped: dict[str, list[RunResult]] = {}
    for run in runs:
        if run.status is RunStatus.ok and _known(run.metrics.get(run.primary_metric)) is not None:
            grouped.setdefault(run.label or run.strategy, []).append(run)
    found = []
    for label, group in grouped.items():
        first = group[0]
        intervals = [run.metrics.get(f"{run.primary_metric}_ci") or [None, None] for run in group]
        found.append(Candidate(
            label=label, strategy=first.strategy, metric=first.primary_metric,
            score=sum(float(run.metrics[run.primary_metric]) for run in group) / len(group),
            low=_mean([_known(interval[0]) for interval in intervals]),
            high=_mean([_known(interval[1]) for interval in intervals]),
            cost_usd=_mean([_cost_usd(run) for run in group]),
            usd_per_1m_queries=_mean([_known(run.cost.get("usd_per_1m_queries")) for run in group]),
            retained=_mean([_known((run.forgetting or {}).get("retained")) for run in group]),
        ))
    return found


@dataclass
class Verdict:
    ranked: list[Candidate]  # the pick first, then the others by utility
    best: Candidate  # the highest utility
    weight: float  # how much one point of lost general ability costs
    utilities: dict[str, float] = field(default_factory=dict)  # label -> utility

    @property
    def pick(self) -> Candidate:
        return self.ranked[0]

    @property
    def cheaper_within_ci(self) -> bool:
        return self.pick is not self.best

    def utility(self, candidate: Candidate) -> float:
        return self.utilities[candidate.label]


def judge(found: list[Candidate], forgetting_tolerance: str | None = None) -> Verdict | None:
    """Rank the candidates by the rules above; None when there is nothing to judge."""
    if not found:
        return None
    weight = FORGETTING_WEIGHT.get(forgetting_tolerance or "", 0.0)

    def penalty(candidate: Candidate) -> float:
        return weight * max(1 - candidate.retained, 0.0) if candidate.retained is not None else 0.0

    utilities = {c.label: c.score - penalty(c) for c in found}
    priced = all(c.cost_usd is not None for c in found)

    def cost(candidate: Candidate) -> float:
        return candidate.cost_usd if priced else float(candidate.order)  # type: ignore[return-value]

    ordered = sorted(found, key=lambda c: (-utilities[c.label], cost(c)))
    best = ordered[0]
    floor = (best.low if best.low is not None else best.score) - penalty(best)
    within = [c for c in ordered if utilities[c.label] >= floor and cost(c) < cost(best)]
    pick = min(within, key=lambda c: (cost(c), -utilities[c.label])) if within else best
    return Verdict([pick] + [c for c in ordered if c is not pick], best, weight, utilities)

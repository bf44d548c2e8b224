"""The one bootstrap: 95% percentile intervals by scipy.stats.bootstrap, seeded, paired where the samples are.

Scoring uses it for every metric's interval (resampling eval items); the forgetting checks use it paired, for the
change from the base model to the adapted one on the same benchmark items.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np


def bootstrap_ci(per_item: Sequence[Any], statistic: Callable[[list[int]], float] | None = None, *,
                 resamples: int = 1000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval over items; `statistic` takes resampled indices (default: the mean of per_item)."""
    from scipy.stats import bootstrap

    n = len(per_item)
    if n == 0:
        return (float("nan"), float("nan"))
    if statistic is None:
        values = np.asarray(per_item, dtype=float)
        if n == 1 or np.all(values == values[0]):  # every resample is the same: no spread (scipy needs 2+ values)
            return (float(values.mean()), float(values.mean()))
        data, function, vectorized = (values,), np.mean, True
    else:
        if n == 1:
            return (float(statistic([0])), float(statistic([0])))
        data, function, vectorized = (np.arange(n),), lambda idx: statistic(idx.tolist()), False
    result = bootstrap(data, function, n_resamples=resamples, vectorized=vectorized, confidence_level=level,
                       method="percentile", rng=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def paired_bootstrap_ci(base: Sequence[float], adapted: Sequence[float], *, resamples: int = 10_000, seed: int = 0,
                        level: float = 0.95) -> tuple[float, float]:
    """Interval of mean(adapted) - mean(base), resampling items with the same indices for both (paired)."""
    from scipy.stats import bootstrap

    base_arr, adapted_arr = np.asarray(base, dtype=float), np.asarray(adapted, dtype=float)
    if base_arr.shape != adapted_arr.shape or base_arr.size == 0:
        raise ValueError(f"paired bootstrap needs two equal, non-empty vectors, got {base_arr.size} and {adapted_arr.size}")
    diff = adapted_arr - base_arr
    if diff.size == 1 or np.all(diff == diff[0]):
        return (float(diff.mean()), float(diff.mean()))

    def delta(b: np.ndarray, a: np.ndarray, axis: int = -1) -> np.ndarray:
        return (a - b).mean(axis=axis)  # the mean per-item change (the same as the change of means)

    result = bootstrap((base_arr, adapted_arr), delta, n_resamples=resamples, paired=True, vectorized=True,
                       confidence_level=level, method="percentile", batch=max(1, 2_000_000 // diff.size),
                       rng=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)

"""The statistics of a results table: mean ± std over seeds, relative gain, and a paired test over users."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class MeanStd:
    mean: float
    std: float  # sample standard deviation (ddof 1) over seeds; 0.0 for a single seed
    n: int

    def to_json(self) -> dict[str, float | int]:
        return {"mean": self.mean, "std": self.std, "n": self.n}


def mean_std(values: Sequence[float]) -> MeanStd:
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        raise ValueError("mean_std needs at least one value")
    std = float(array.std(ddof=1)) if array.size > 1 else 0.0
    return MeanStd(float(array.mean()), std, int(array.size))


def relative_gain(value: float, baseline: float) -> float | None:
    """(value - baseline) / baseline; None when the baseline is 0 (no finite relative gain)."""
    if baseline == 0 or not math.isfinite(baseline):
        return None
    return (value - baseline) / baseline


@dataclass(frozen=True)
class PairedTest:
    p_value: float
    statistic: float | None  # Wilcoxon's W (the smaller signed-rank sum); None when every pair is equal
    n_users: int  # pairs compared
    n_nonzero: int  # pairs whose difference is not 0 (the ones the test ranks)


def paired_wilcoxon(values: np.ndarray, baseline: np.ndarray) -> PairedTest:
    """Two-sided Wilcoxon signed-rank test of per-user values against the baseline's for the same users.

    Zero differences are dropped (Wilcoxon's own treatment); when every difference is 0 the two agree on every
    user and p is 1.
    """
    from scipy.stats import wilcoxon

    values, baseline = np.asarray(values, dtype=np.float64), np.asarray(baseline, dtype=np.float64)
    if values.shape != baseline.shape:
        raise ValueError(f"paired test: {values.shape} values against {baseline.shape} baseline values")
    diff = values - baseline
    nonzero = int(np.count_nonzero(diff))
    if nonzero == 0:
        return PairedTest(1.0, None, int(diff.size), 0)
    result = wilcoxon(values, baseline, zero_method="wilcox", alternative="two-sided")
    return PairedTest(float(result.pvalue), float(result.statistic), int(diff.size), nonzero)

"""Statistics over seeds: the Student-t interval of a mean, and paired comparisons of two arms.

Student 1908; see Bouthillier et al. 2021, https://arxiv.org/abs/2103.03098, on variance in ML
benchmarks. scipy is imported inside the functions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ganaug.errors import GanaugDataError

__all__ = ["paired_comparison", "t_interval"]

# Values closer than this, relative to their size, are equal: accuracies k/n differ from each
# other's float rounding by ~1e-16, and a "spread" that small is no spread.
_SAME = 1e-12


def _no_spread(x: np.ndarray, scale: float) -> bool:
    """Whether the values ``x`` are equal up to float rounding of numbers of size ``scale``."""
    return bool(np.ptp(x) <= _SAME * max(scale, np.finfo(np.float64).tiny))


def t_interval(values: Sequence[float], confidence: float = 0.95) -> dict[str, Any]:
    """Mean, sample std and the Student-t interval of the mean.

    ``mean ± t_{(1+c)/2, n-1} * s / sqrt(n)`` (scipy.stats.t); ``low``/``high`` are None for
    fewer than 2 values. Values equal up to float rounding have ``std`` 0 and the point
    ``low == high == mean``.
    """
    from scipy import stats

    x = np.asarray(values, dtype=np.float64)
    n = len(x)
    mean = float(x.mean()) if n else float("nan")
    std = float(x.std(ddof=1)) if n >= 2 else None
    if n >= 2 and np.isfinite(x).all() and _no_spread(x, float(np.abs(x).max())):
        std = 0.0
    low = high = None
    if n >= 2:
        sem = std / math.sqrt(n)
        if sem > 0:
            low, high = (float(v) for v in stats.t.interval(confidence, n - 1, loc=mean,
                                                             scale=sem))
        else:
            low = high = mean
    return {"mean": mean, "std": std, "low": low, "high": high, "n": n}


def paired_comparison(arm: Sequence[float], baseline: Sequence[float],
                      confidence: float = 0.95) -> dict[str, Any]:
    """Paired difference ``arm - baseline`` over seeds: mean, t-interval, paired t-test p-value.

    ``p`` is the two-sided p-value of ``scipy.stats.ttest_rel``; None for fewer than 2 pairs
    and for differences without spread (the same on every seed, up to float rounding: the t
    statistic is d / 0, and a p of 0 would call two seeds that each gained one test image a
    certain win). ``tested`` is False for a single pair: one seed gives a difference but no
    spread, so nothing about it is tested (reports must say so).

    Raises:
        GanaugDataError: the two sides differ in length, or a value is NaN or infinite.
    """
    from scipy import stats

    a, b = np.asarray(arm, dtype=np.float64), np.asarray(baseline, dtype=np.float64)
    if a.shape != b.shape:
        raise GanaugDataError(f"Paired comparison needs one value per seed on both sides; got "
                              f"{len(a)} and {len(b)}.")
    for side, x in (("arm", a), ("baseline", b)):
        if not np.isfinite(x).all():
            i = int(np.flatnonzero(~np.isfinite(x))[0])
            raise GanaugDataError(f"Paired comparison needs finite values; the {side}'s value "
                                  f"{i} is {x[i]}. Check the cell it came from (an accuracy is a "
                                  "number in [0, 1]).")
    d = a - b
    out = t_interval(d, confidence)
    flat = len(d) >= 2 and _no_spread(d, float(max(np.abs(a).max(), np.abs(b).max())))
    if flat:
        out.update(std=0.0, low=out["mean"], high=out["mean"])
    p = None
    if len(a) >= 2 and not flat:
        p = float(stats.ttest_rel(a, b).pvalue)
        p = None if math.isnan(p) else p
    out["p"] = p
    out["tested"] = len(a) >= 2
    return out

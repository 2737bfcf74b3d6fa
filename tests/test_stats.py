"""ganaug.evaluation.stats: t-intervals and paired comparisons, against scipy on known numbers."""

from __future__ import annotations

import math

import pytest

from ganaug.errors import GanaugDataError
from ganaug.evaluation.stats import paired_comparison, t_interval


# -- statistics against scipy on known numbers -----------------------------------------------------
def test_t_interval_known_numbers():
    from scipy import stats

    got = t_interval([1.0, 2.0, 3.0, 4.0])
    std = math.sqrt(5 / 3)
    half = stats.t.ppf(0.975, 3) * std / 2  # 3.1824 * 1.2910 / sqrt(4)
    assert got["mean"] == pytest.approx(2.5) and got["std"] == pytest.approx(std)
    assert got["low"] == pytest.approx(2.5 - half) and got["high"] == pytest.approx(2.5 + half)
    assert got["low"] == pytest.approx(0.4457, abs=1e-4)


def test_t_interval_of_one_value_has_no_interval():
    assert t_interval([0.7]) == {"mean": 0.7, "std": None, "low": None, "high": None, "n": 1}


def test_paired_comparison_known_numbers():
    from scipy import stats

    got = paired_comparison([0.90, 0.80, 0.85], [0.80, 0.75, 0.80])
    # differences 0.10, 0.05, 0.05: mean 1/15, sd 0.02887, t = 4.0 with 2 degrees of freedom
    assert got["mean"] == pytest.approx(1 / 15)
    assert got["p"] == pytest.approx(2 * stats.t.sf(4.0, 2), rel=1e-6)
    assert got["p"] == pytest.approx(0.0572, abs=1e-4)
    assert got["low"] < got["mean"] < got["high"]


def test_paired_comparison_needs_matching_lengths():
    with pytest.raises(GanaugDataError, match=r"one value per seed on both sides; got 2 and 3"):
        paired_comparison([1, 2], [1, 2, 3])
    assert paired_comparison([0.5, 0.6], [0.5, 0.6])["p"] is None


def test_t_interval_of_equal_values_is_the_point_and_of_none_is_nan():
    assert t_interval([0.5, 0.5, 0.5]) == {"mean": 0.5, "std": 0.0, "low": 0.5, "high": 0.5,
                                           "n": 3}
    empty = t_interval([])
    assert math.isnan(empty["mean"]) and empty["std"] is None and empty["n"] == 0


def test_t_interval_confidence_level():
    from scipy import stats

    got = t_interval([1.0, 3.0], confidence=0.9)
    half = stats.t.ppf(0.95, 1) * math.sqrt(2) / math.sqrt(2)  # 6.3138 * s / sqrt(n), s = sqrt 2
    assert got["low"] == pytest.approx(2.0 - half) and got["high"] == pytest.approx(2.0 + half)
    assert got["high"] == pytest.approx(8.3138, abs=1e-4)


@pytest.mark.parametrize("arm, base", [
    ([0.9, 0.9, 0.9], [0.8, 0.8, 0.8]),      # the same gain on every seed, exactly
    ([0.9, 0.8], [0.8, 0.7]),                # the same gain up to float rounding (7.9e-17)
    ([0.31, 0.47, 0.52], [0.21, 0.37, 0.42]),
])
def test_paired_comparison_of_the_same_difference_on_every_seed_tests_nothing(arm, base):
    # No spread: the t statistic is d / 0. scipy said p = 0 (or 3.5e-16 from rounding noise),
    # which the verdict read as a significant win from two seeds that differ by one test image.
    got = paired_comparison(arm, base)
    assert got["mean"] == pytest.approx(0.1)
    assert got["p"] is None
    assert got["std"] == 0.0 and got["low"] == got["high"] == got["mean"]


def test_t_interval_of_values_equal_up_to_rounding_is_the_point():
    got = t_interval([0.1 + 0.2, 0.3, 0.3])
    assert got["std"] == 0.0 and got["low"] == got["high"] == got["mean"]


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_paired_comparison_refuses_non_finite_values(bad):
    # Before: mean nan/inf with low = high = mean and tested = True, which the verdict ranked.
    with pytest.raises(GanaugDataError, match=r"finite values.*the arm's value 1 is (nan|inf|-inf)"):
        paired_comparison([0.9, bad, 0.8], [0.8, 0.7, 0.7])
    with pytest.raises(GanaugDataError, match=r"finite values.*the baseline's value 0 is"):
        paired_comparison([0.9, 0.8], [bad, 0.7])

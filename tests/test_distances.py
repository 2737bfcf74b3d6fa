"""ganaug.evaluation.distances: Fréchet distance, precision/recall, density/coverage."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ganaug.errors import GanaugConfigError, GanaugDataError
from ganaug.evaluation.distances import (
    density_coverage,
    frechet_distance,
    frechet_distance_per_class,
    precision_recall,
)


# -- Fréchet distance ----------------------------------------------------------------------------
def test_fd_of_identical_sets_is_zero():
    x = torch.randn(400, 8, generator=torch.Generator().manual_seed(0))
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6)


def test_fd_of_a_shifted_set_is_the_squared_shift():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 6))
    shift = rng.normal(size=6)
    # Same covariance, so the trace term vanishes and only ||mu_a - mu_b||^2 is left.
    assert frechet_distance(a, a + shift) == pytest.approx(float(shift @ shift), rel=1e-6)


def test_fd_of_independent_gaussians_matches_the_formula():
    rng = np.random.default_rng(1)
    mu = np.array([1.0, -2.0, 0.5])
    a = rng.normal(size=(20000, 3))
    b = rng.normal(size=(20000, 3)) + mu
    # the sampling error of the mean difference is ~0.05 (2 |mu| sqrt(2/N)); 3 sigma
    assert frechet_distance(a, b) == pytest.approx(float(mu @ mu), abs=0.15)


def test_fd_of_a_scaled_set_is_the_covariance_trace():
    a = np.random.default_rng(2).normal(size=(300, 5))
    # cov(2a) = 4 S and sqrt(S 4S) = 2S, so the trace term is tr S + 4 tr S - 4 tr S = tr S;
    # the means are m and 2m, so the mean term is ||m||^2.
    m = a.mean(0)
    expected = np.trace(np.cov(a, rowvar=False)) + m @ m
    assert frechet_distance(a, 2 * a) == pytest.approx(expected, rel=1e-6)


def test_fd_with_singular_covariance_is_finite():
    rng = np.random.default_rng(3)
    value = frechet_distance(rng.normal(size=(5, 20)), rng.normal(size=(6, 20)) + 1.0)
    assert math.isfinite(value) and value > 0


def test_fd_errors():
    with pytest.raises(GanaugDataError, match=r"Feature sizes differ: 3 vs 4"):
        frechet_distance(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(GanaugDataError,
                       match=r"feats_a needs at least 2 feature vectors for a covariance; got 1"):
        frechet_distance(np.zeros((1, 3)), np.zeros((5, 3)))
    with pytest.raises(GanaugDataError, match=r"must be a 2-D \(N, D\) array"):
        frechet_distance(np.zeros(5), np.zeros((5, 3)))


def test_fd_per_class_names_classes_and_marks_missing_ones_nan():
    rng = np.random.default_rng(4)
    real = torch.tensor(rng.normal(size=(40, 3)))
    real_labels = torch.tensor([0] * 20 + [1] * 20)
    fake = real + torch.tensor([1.0, 0.0, 0.0])
    fake_labels = torch.tensor([0] * 20 + [2] * 20)
    out = frechet_distance_per_class(real, real_labels, fake, fake_labels, ["a", "b", "c"])
    assert list(out) == ["a", "b", "c"]
    assert out["a"] == pytest.approx(1.0, rel=1e-6)
    assert math.isnan(out["b"]) and math.isnan(out["c"])


# -- precision / recall / density / coverage -----------------------------------------------------
def test_identical_sets_have_full_precision_recall_and_coverage():
    x = torch.randn(300, 4, generator=torch.Generator().manual_seed(0))
    assert precision_recall(x, x, k=3) == {"precision": 1.0, "recall": 1.0}
    dc = density_coverage(x, x, k=5)
    assert dc["coverage"] == 1.0
    assert 0.8 < dc["density"] < 1.6


def test_same_distribution_has_density_near_one():
    gen = torch.Generator().manual_seed(1)
    real, fake = torch.randn(2000, 3, generator=gen), torch.randn(2000, 3, generator=gen)
    dc = density_coverage(real, fake, k=5)
    assert dc["density"] == pytest.approx(1.0, abs=0.15)
    assert dc["coverage"] > 0.9
    pr = precision_recall(real, fake, k=3)
    assert pr["precision"] > 0.9 and pr["recall"] > 0.9


def test_far_apart_sets_score_zero():
    x = torch.randn(100, 4, generator=torch.Generator().manual_seed(0))
    assert precision_recall(x, x + 100.0) == {"precision": 0.0, "recall": 0.0}
    dc = density_coverage(x, x + 100.0)
    assert dc == {"density": 0.0, "coverage": 0.0}


def test_precision_recall_match_a_brute_force_count():
    rng = np.random.default_rng(5)
    real, fake = rng.normal(size=(12, 2)), rng.normal(size=(9, 2)) + 0.7
    k = 2

    def radii(x):
        d = np.linalg.norm(x[:, None] - x[None], axis=-1)
        return np.sort(d, axis=1)[:, k]  # column 0 is the point itself

    def inside(points, centres, r):
        d = np.linalg.norm(points[:, None] - centres[None], axis=-1)
        return (d <= r[None]).any(1).mean()

    got = precision_recall(real, fake, k=k)
    assert got["precision"] == pytest.approx(inside(fake, real, radii(real)))
    assert got["recall"] == pytest.approx(inside(real, fake, radii(fake)))


def test_k_must_fit_the_sample_count():
    x = torch.zeros(3, 2)
    with pytest.raises(GanaugDataError, match=r"k=3 nearest neighbours need more than 3 real"):
        precision_recall(x, torch.zeros(10, 2), k=3)
    with pytest.raises(GanaugConfigError, match=r"k must be an integer >= 1, got 0"):
        density_coverage(torch.zeros(10, 2), x, k=0)

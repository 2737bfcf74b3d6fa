"""Pure distances between two feature sets: Fréchet distance, precision/recall, density/coverage.

Features are ``(N, D)`` tensors or arrays (any extractor, see :mod:`ganaug.evaluation.features`);
nothing here trains or loads a model. Fréchet distance: Heusel et al. 2017,
https://arxiv.org/abs/1706.08500; precision/recall: Kynkäänniemi et al. 2019,
https://arxiv.org/abs/1904.06991; density/coverage: Naeem et al. 2020,
https://arxiv.org/abs/2002.09797.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from ganaug._checks import check_int
from ganaug.errors import GanaugDataError

__all__ = [
    "density_coverage",
    "frechet_distance",
    "frechet_distance_per_class",
    "precision_recall",
]


def _as_2d_float64(feats, what: str) -> np.ndarray:
    x = feats.detach().cpu().double().numpy() if isinstance(feats, torch.Tensor) else \
        np.asarray(feats, dtype=np.float64)
    if x.ndim != 2:
        raise GanaugDataError(f"{what} must be a 2-D (N, D) array of features; got shape "
                              f"{x.shape}.")
    if len(x) < 2:
        raise GanaugDataError(f"{what} needs at least 2 feature vectors for a covariance; got "
                              f"{len(x)}. Use more samples.")
    return x


def frechet_distance(feats_a, feats_b, *, eps: float = 1e-6) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (the "FID" formula).

    ``d² = ||mu_a - mu_b||² + Tr(S_a + S_b - 2 (S_a S_b)^{1/2})`` (Dowson & Landau 1982; Heusel et
    al. 2017), in float64 with ``scipy.linalg.sqrtm``. When the product is singular (fewer samples
    than dimensions) the matrix root is retried with ``eps`` added to both diagonals; a small
    imaginary part from rounding is dropped.

    Args:
        feats_a: ``(N, D)`` features (tensor or array).
        feats_b: ``(M, D)`` features.
        eps: diagonal offset for singular covariances.

    Returns:
        The squared distance (>= 0; the name "FID" means this squared value).
    """
    from scipy import linalg

    a = _as_2d_float64(feats_a, "feats_a")
    b = _as_2d_float64(feats_b, "feats_b")
    if a.shape[1] != b.shape[1]:
        raise GanaugDataError(f"Feature sizes differ: {a.shape[1]} vs {b.shape[1]}. Use the same "
                              "feature extractor for both sets.")
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a = np.atleast_2d(np.cov(a, rowvar=False))
    cov_b = np.atleast_2d(np.cov(b, rowvar=False))
    with warnings.catch_warnings():
        # A singular product is expected with few samples; it is handled just below.
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(cov_a @ cov_b)
        if not np.isfinite(covmean).all() or (np.iscomplexobj(covmean)
                                              and np.abs(covmean.imag).max() > 1e-3):
            offset = np.eye(len(cov_a)) * eps
            covmean = linalg.sqrtm((cov_a + offset) @ (cov_b + offset))
    covmean = np.real(covmean)
    diff = mu_a - mu_b
    value = diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2.0 * np.trace(covmean)
    return max(float(value), 0.0)


def frechet_distance_per_class(real_feats, real_labels, fake_feats, fake_labels,
                               class_names: list[str]) -> dict[str, float]:
    """Fréchet distance per class (the terms of the "intra-class FID", Miyato & Koyama 2018).

    Args:
        real_feats: ``(N, D)``; real_labels: ``(N,)`` int64.
        fake_feats: ``(M, D)``; fake_labels: ``(M,)`` int64.
        class_names: name of each label.

    Returns:
        ``{class name: distance}``; NaN for a class with fewer than 2 images on either side.
    """
    real_labels = torch.as_tensor(real_labels).cpu()
    fake_labels = torch.as_tensor(fake_labels).cpu()
    out = {}
    for k, name in enumerate(class_names):
        r, f = real_feats[real_labels == k], fake_feats[fake_labels == k]
        out[str(name)] = frechet_distance(r, f) if len(r) >= 2 and len(f) >= 2 else float("nan")
    return out


def _as_float64_tensor(feats, what: str) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(feats) if not isinstance(feats, torch.Tensor) else feats)
    if x.ndim != 2 or len(x) == 0:
        raise GanaugDataError(f"{what} must be a non-empty (N, D) feature matrix; got shape "
                              f"{tuple(x.shape)}.")
    return x.detach().cpu().double()


def _kth_neighbour_radii(x: torch.Tensor, k: int, chunk: int = 1024) -> torch.Tensor:
    """Distance of each row of ``x`` to its k-th nearest other row: ``(N,)``."""
    radii = []
    for start in range(0, len(x), chunk):
        d = torch.cdist(x[start:start + chunk], x)
        # k + 1: the nearest "neighbour" of a point is itself, at distance 0.
        radii.append(d.kthvalue(k + 1, dim=1).values)
    return torch.cat(radii)


def _check_k(k: int, n: int, what: str) -> None:
    check_int("k", k)
    if k >= n:
        raise GanaugDataError(f"k={k} nearest neighbours need more than {k} {what} feature "
                              f"vectors; got {n}. Use more samples or a smaller k.")


def _count_in_balls(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor,
                    chunk: int = 1024) -> torch.Tensor:
    """For each point, how many balls ``(centres, radii)`` contain it: ``(len(points),)``."""
    counts = []
    for start in range(0, len(points), chunk):
        d = torch.cdist(points[start:start + chunk], centres)
        counts.append((d <= radii[None, :]).sum(1))
    return torch.cat(counts)


def precision_recall(real_feats, fake_feats, *, k: int = 3) -> dict[str, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019).

    The real manifold is the union of balls around each real feature with radius its distance to
    its k-th nearest real neighbour; likewise for the fake manifold.
    ``precision = (1/M) sum_j 1[fake_j in real manifold]`` (how many fakes look real),
    ``recall = (1/N) sum_i 1[real_i in fake manifold]`` (how much of the real data is covered).

    Args:
        real_feats: ``(N, D)``; fake_feats: ``(M, D)``; k: neighbourhood size.

    Returns:
        ``{"precision", "recall"}`` in [0, 1].
    """
    real = _as_float64_tensor(real_feats, "real_feats")
    fake = _as_float64_tensor(fake_feats, "fake_feats")
    _check_k(k, len(real), "real")
    _check_k(k, len(fake), "fake")
    r_real = _kth_neighbour_radii(real, k)
    r_fake = _kth_neighbour_radii(fake, k)
    precision = (_count_in_balls(fake, real, r_real) > 0).double().mean().item()
    recall = (_count_in_balls(real, fake, r_fake) > 0).double().mean().item()
    return {"precision": precision, "recall": recall}


def density_coverage(real_feats, fake_feats, *, k: int = 5) -> dict[str, float]:
    """Density and coverage (Naeem et al. 2020), robust to outliers among the real features.

    With ``r_i`` the distance of real_i to its k-th nearest real neighbour and ``B_i`` its ball:
    ``density = 1/(k M) sum_j sum_i 1[fake_j in B_i]`` (about 1 when fakes are distributed like
    reals, > 1 when they crowd dense regions) and
    ``coverage = (1/N) sum_i 1[some fake_j in B_i]`` in [0, 1].

    Args:
        real_feats: ``(N, D)``; fake_feats: ``(M, D)``; k: neighbourhood size.

    Returns:
        ``{"density", "coverage"}``.
    """
    real = _as_float64_tensor(real_feats, "real_feats")
    fake = _as_float64_tensor(fake_feats, "fake_feats")
    _check_k(k, len(real), "real")
    r_real = _kth_neighbour_radii(real, k)
    density = _count_in_balls(fake, real, r_real).double().sum().item() / (k * len(fake))
    nearest_fake = torch.cat([torch.cdist(real[s:s + 1024], fake).min(1).values
                              for s in range(0, len(real), 1024)])
    coverage = (nearest_fake <= r_real).double().mean().item()
    return {"density": density, "coverage": coverage}

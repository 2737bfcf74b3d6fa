"""How good is a generator? Feature distances, precision/recall, density/coverage and CAS.

All distances are computed in the feature space of a classifier. By default that is a small timm
classifier trained offline on the dataset's own training split (cached as safetensors under
``~/.cache/ganaug/features``), so the numbers compare generators of *this* dataset with each
other; they are **not** comparable with published Inception FIDs (Heusel et al. 2017,
https://arxiv.org/abs/1706.08500). Give ``features="inception_v3:WEIGHTS"`` (any timm model name
and a local weights file) for Inception-style numbers. Precision/recall: Kynkäänniemi et al. 2019,
https://arxiv.org/abs/1904.06991; density/coverage: Naeem et al. 2020,
https://arxiv.org/abs/2002.09797; Classification Accuracy Score: Ravuri & Vinyals 2019,
https://arxiv.org/abs/1905.10887.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganaug.errors import GanaugConfigError, GanaugDataError, GanaugModelError

__all__ = [
    "DEFAULT_BACKBONE",
    "DEFAULT_CLASSIFIER_STEPS",
    "DEFAULT_STEM",
    "FeatureExtractor",
    "classification_accuracy_score",
    "density_coverage",
    "evaluate_cli",
    "evaluate_generator",
    "format_metrics",
    "frechet_distance",
    "frechet_distance_per_class",
    "precision_recall",
    "timm_feature_extractor",
    "train_real_classifier",
]

# A 1-block-per-stage ResNet with a 3x3 stride-1 stem that keeps the max-pool: >97% on mnist5k
# in about a minute on 2 CPU cores (see docs/evaluation.md for the measurements).
DEFAULT_BACKBONE = "resnet10t"
DEFAULT_STEM = "cifar-3x3-pool"
DEFAULT_MODEL_KWARGS: dict[str, Any] = {"channels": (32, 64, 128, 256), "stem_width": 16}
DEFAULT_CLASSIFIER_STEPS = 300
DEFAULT_BATCH_SIZE = 128
NOT_INCEPTION_NOTE = ("features of a {backbone} classifier trained on this dataset's training "
                      "split: compare these distances between generators of this dataset only; "
                      "they are NOT comparable with published (Inception-v3) FIDs.")


# -- distances ------------------------------------------------------------------------------------
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
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise GanaugConfigError(f"k must be a positive integer; got {k!r}.")
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


# -- feature extractors ---------------------------------------------------------------------------
@dataclass
class FeatureExtractor:
    """A named map from ``(N, C, H, W) uint8`` images to ``(N, D) float32`` features.

    Attributes:
        name: what produced the features, e.g. ``"resnet10t trained on mnist5k?split=train"``.
        note: how to read distances measured with it.
        fn: the map itself.
    """

    name: str
    note: str
    fn: Callable[[torch.Tensor], torch.Tensor]

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return self.fn(images)


def cache_dir(path: str | os.PathLike | None = None) -> Path:
    """Where trained feature classifiers are cached: ``path``, ``$GANAUG_CACHE_DIR`` or
    ``~/.cache/ganaug``, plus ``/features``."""
    root = path or os.environ.get("GANAUG_CACHE_DIR") or Path.home() / ".cache" / "ganaug"
    return Path(root).expanduser() / "features"


def _model_kwargs(backbone: str, model_kwargs: dict[str, Any] | None) -> dict[str, Any]:
    """The timm kwargs of the classifier: the narrow default only for the default backbone."""
    if model_kwargs is not None:
        return dict(model_kwargs)
    return dict(DEFAULT_MODEL_KWARGS) if backbone == DEFAULT_BACKBONE else {}


def train_real_classifier(train_data, *, backbone: str = DEFAULT_BACKBONE,
                          stem: str = DEFAULT_STEM, steps: int = DEFAULT_CLASSIFIER_STEPS,
                          model_kwargs: dict[str, Any] | None = None,
                          batch_size: int = DEFAULT_BATCH_SIZE, seed: int = 0, device=None,
                          cache: str | os.PathLike | None | bool = None,
                          progress: bool = True):
    """The classifier trained on the real training data (feature extractor and CAS reference).

    Cached as ``<cache>/features/<data fingerprint>-<backbone>-<stem>-<kwargs hash>-<steps>x<batch>
    -s<seed>.safetensors`` (safetensors, never pickle); ``cache=False`` turns the cache off.

    Returns:
        ``(model, cache_path or None, cached: bool)``.
    """
    from ganaug.classifier import (
        create_classifier,
        flip_suits,
        load_classifier,
        save_classifier,
        train_classifier,
    )

    kwargs = _model_kwargs(backbone, model_kwargs)
    path = None
    if cache is not False:
        kw_hash = hashlib.sha256(json.dumps(kwargs, sort_keys=True).encode()).hexdigest()[:8]
        name = (f"{train_data.fingerprint()[:20]}-{backbone}-{stem}-{kw_hash}-{steps}x"
                f"{batch_size}-s{seed}.safetensors")
        path = cache_dir(cache if cache not in (None, True) else None) / name
        if path.is_file():
            try:
                model, _ = load_classifier(path)
                return model, path, True
            except GanaugModelError:
                path.unlink()  # a broken cache entry: retrain and overwrite it
    model = create_classifier(backbone, num_classes=train_data.num_classes,
                              in_chans=train_data.channels, image_size=train_data.image_size,
                              stem=stem, seed=seed, **kwargs)
    train_classifier(model, train_data, steps=steps, batch_size=batch_size, augment="standard",
                     flip=flip_suits(train_data.spec), seed=seed, device=device,
                     progress=progress, desc="real classifier")
    if path is not None:
        save_classifier(model, path, metadata={"data_spec": train_data.spec,
                                               "data_fingerprint": train_data.fingerprint()})
    return model, path, False


def timm_feature_extractor(spec: str, *, device=None) -> FeatureExtractor:
    """``"NAME:WEIGHTS"``: a timm model with local weights (safetensors or a torch state dict).

    Images are resized to the model's input size, grey is repeated to RGB, and the model's own
    mean/std are applied. Features are its pooled pre-logits.

    Raises:
        GanaugConfigError: not ``NAME:PATH``, or an unknown model name.
        GanaugModelError: missing or mismatched weights.
    """
    import timm
    from torch.nn import functional as F

    from ganaug.classifier import _check_name, resolve_device

    name, sep, weights = str(spec).partition(":")
    if not sep or not name or not weights:
        raise GanaugConfigError(
            f"--features must be NAME:WEIGHTS_FILE (e.g. inception_v3:./inception.safetensors); "
            f"got {spec!r}. Leave it out to train a feature classifier on your data.")
    _check_name(name)
    path = Path(weights).expanduser()
    if not path.is_file():
        raise GanaugModelError(f"Feature weights file {path} does not exist. Give a local "
                               ".safetensors or .pth file (nothing is downloaded).")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
        state = state.get("state_dict", state) if isinstance(state, dict) else state
    model = timm.create_model(name, pretrained=False)
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches are raised even with strict=False
        raise GanaugModelError(f"{path} does not fit timm '{name}': {str(exc)[:300]}. Use the "
                               "weights of exactly that model.") from exc
    if missing or unexpected:
        raise GanaugModelError(
            f"{path} does not fit timm '{name}': {len(missing)} missing keys (e.g. "
            f"{missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]}). Use the "
            "weights of exactly that model.")
    dev = resolve_device(device)
    model.to(dev).eval()
    cfg = model.pretrained_cfg or {}
    _, h, w = cfg.get("input_size", (3, 224, 224))
    mean = torch.tensor(cfg.get("mean", (0.485, 0.456, 0.406)), device=dev)[None, :, None, None]
    std = torch.tensor(cfg.get("std", (0.229, 0.224, 0.225)), device=dev)[None, :, None, None]

    def fn(images: torch.Tensor) -> torch.Tensor:
        out = []
        with torch.inference_mode():
            for start in range(0, len(images), 128):
                x = images[start:start + 128].to(dev).float() / 255.0
                x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
                x = F.interpolate(x, size=(h, w), mode="bilinear", antialias=True)
                feats = model.forward_head(model.forward_features((x - mean) / std),
                                           pre_logits=True)
                out.append(feats.flatten(1).float().cpu())
        return torch.cat(out)

    return FeatureExtractor(name=f"{name} ({path.name})",
                            note=f"features of timm {name} with weights {path}.", fn=fn)


def _classifier_extractor(model, train_spec: str, backbone: str, device) -> FeatureExtractor:
    from ganaug.classifier import extract_features

    return FeatureExtractor(
        name=f"{backbone} trained on {train_spec or 'the training data'}",
        note=NOT_INCEPTION_NOTE.format(backbone=backbone),
        fn=lambda images: extract_features(model, images, device=device))


# -- CAS -----------------------------------------------------------------------------------------
def _sample(generator, n_per_class: int, seed: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = generator.sample(n_per_class=n_per_class, seed=seed, output="uint8",
                                      device=device, return_labels=True)
    return images.cpu(), labels.cpu().long()


def classification_accuracy_score(generator, test_data, *, n_per_class: int,
                                  real_accuracy: float | None = None,
                                  backbone: str = DEFAULT_BACKBONE, stem: str = DEFAULT_STEM,
                                  model_kwargs: dict[str, Any] | None = None,
                                  steps: int = DEFAULT_CLASSIFIER_STEPS,
                                  batch_size: int = DEFAULT_BATCH_SIZE, seed: int = 0,
                                  device=None, progress: bool = True,
                                  samples: tuple[torch.Tensor, torch.Tensor] | None = None
                                  ) -> dict[str, Any]:
    """CAS: accuracy on real test images of a classifier trained on generated images only.

    ``cas_ratio = cas / real_accuracy``, where ``real_accuracy`` comes from the same classifier
    recipe (backbone, steps, batch, augmentation) trained on the real training split: 1.0 means
    the synthetic data teaches the classifier as well as the real data.

    Args:
        generator: anything with ``sample(n_per_class=, seed=, output="uint8", device=,
            return_labels=True)`` and ``classes``.
        test_data: real ``LabeledImages`` never seen by the generator.
        n_per_class: generated training images per class.
        samples: already drawn ``(images, labels)`` to train on instead of sampling.

    Returns:
        ``{"cas", "cas_balanced", "cas_ratio" (None without real_accuracy), "cas_per_class"}``.
    """
    from ganaug.classifier import (
        create_classifier,
        evaluate_classifier,
        flip_suits,
        train_classifier,
    )

    images, labels = samples if samples is not None else _sample(generator, n_per_class, seed,
                                                                 device)
    model = create_classifier(backbone, num_classes=test_data.num_classes,
                              in_chans=test_data.channels, image_size=test_data.image_size,
                              stem=stem, seed=seed, **_model_kwargs(backbone, model_kwargs))
    train_classifier(model, (images, labels), steps=steps, batch_size=batch_size,
                     augment="standard", flip=flip_suits(test_data.spec), seed=seed,
                     device=device, progress=progress, desc="CAS classifier")
    result = evaluate_classifier(model, test_data.images, test_data.labels, device=device)
    cas = result["accuracy"]
    return {
        "cas": cas,
        "cas_balanced": result["balanced_accuracy"],
        "cas_ratio": cas / real_accuracy if real_accuracy else None,
        "cas_per_class": dict(zip(map(str, test_data.classes), result["per_class_accuracy"])),
    }


# -- everything at once ---------------------------------------------------------------------------
def _check_generator_fits(generator, data, what: str) -> None:
    from ganaug.classifier import check_same_classes

    check_same_classes("the generator", list(generator.classes), what, list(data.classes))
    if (data.image_size, data.channels) != (generator.image_size, generator.channels):
        raise GanaugDataError(
            f"The generator makes {generator.channels}x{generator.image_size}x"
            f"{generator.image_size} images but {what} is {data.channels}x{data.image_size}x"
            f"{data.image_size}. Load the data with size={generator.image_size}, "
            f"channels={generator.channels} (CLI: the evaluate command does this for you).")


def _finite_mean(values) -> float:
    vals = [v for v in values if not math.isnan(v)]
    return float(sum(vals) / len(vals)) if vals else float("nan")


def evaluate_generator(generator, train_data, test_data, *, n_per_class: int | None = None,
                       features: str | FeatureExtractor | None = None,
                       classifier_steps: int | None = None, backbone: str = DEFAULT_BACKBONE,
                       stem: str = DEFAULT_STEM, model_kwargs: dict[str, Any] | None = None,
                       batch_size: int = DEFAULT_BATCH_SIZE,
                       k_pr: int = 3, k_dc: int = 5, seed: int = 0, device=None,
                       cache: str | os.PathLike | None | bool = None,
                       progress: bool = True) -> dict[str, Any]:
    """Every generator metric ganaug has, against real data the generator did not see.

    Steps: train (or load from the cache) the real classifier on ``train_data``; draw
    ``n_per_class`` images per class; embed them and the real **test** images (unseen by both the
    generator and the feature classifier, so a generator that copies its training images gets no
    credit for it) with the feature extractor; compute the distances; train the same classifier
    recipe on the generated images for CAS.

    Args:
        generator: a :class:`ganaug.Generator` (or anything with its ``sample()`` contract,
            ``classes``, ``image_size`` and ``channels``).
        train_data: the real ``LabeledImages`` the generator was trained on.
        test_data: held-out real ``LabeledImages`` with the same classes.
        n_per_class: generated images per class (default: the largest real training class,
            at most 1000).
        features: None (the real classifier's features), ``"NAME:WEIGHTS"`` (a timm model with
            local weights) or a :class:`FeatureExtractor`.
        classifier_steps: optimiser steps of the real and CAS classifiers (default 300).
        backbone, stem, model_kwargs, batch_size: the classifier recipe (``model_kwargs``
            default: a narrow ``channels=(32, 64, 128, 256)`` for the default backbone).
        k_pr, k_dc: neighbourhood sizes of precision/recall and density/coverage.
        seed: seeds the classifier, the batches and the generated images.
        cache: folder of the classifier cache, or False for none.

    Returns:
        ``fid``, ``fid_per_class`` ({class: value}), ``intra_fid`` (their mean), ``fid_real``
        (train vs test features: what a perfect generator would score), ``precision``,
        ``recall``, ``density``, ``coverage``, ``cas``, ``cas_balanced``, ``cas_ratio``,
        ``real_accuracy``, ``real_balanced_accuracy``, ``cas_per_class`` and ``how`` (extractor,
        note, counts, budget, seed, cache, seconds).
    """
    from ganaug.classifier import evaluate_classifier

    start = time.perf_counter()
    _check_generator_fits(generator, train_data, "the training data")
    _check_generator_fits(generator, test_data, "the test data")
    steps = DEFAULT_CLASSIFIER_STEPS if classifier_steps is None else classifier_steps
    n = n_per_class or min(1000, max(train_data.class_counts()))
    real_model, cache_path, cached = train_real_classifier(
        train_data, backbone=backbone, stem=stem, model_kwargs=model_kwargs, steps=steps,
        batch_size=batch_size, seed=seed,
        device=device, cache=cache, progress=progress)
    real_eval = evaluate_classifier(real_model, test_data.images, test_data.labels, device=device)

    if features is None:
        extractor = _classifier_extractor(real_model, train_data.spec, backbone, device)
    elif isinstance(features, str):
        extractor = timm_feature_extractor(features, device=device)
    else:
        extractor = features
    fake_images, fake_labels = _sample(generator, n, seed, device)
    feats_fake = extractor(fake_images)
    feats_test = extractor(test_data.images)
    feats_train = extractor(train_data.images)
    per_class = frechet_distance_per_class(feats_test, test_data.labels, feats_fake, fake_labels,
                                           list(test_data.classes))
    cas = classification_accuracy_score(
        generator, test_data, n_per_class=n, real_accuracy=real_eval["accuracy"],
        backbone=backbone, stem=stem, model_kwargs=model_kwargs, steps=steps,
        batch_size=batch_size, seed=seed,
        device=device, progress=progress, samples=(fake_images, fake_labels))
    return {
        "fid": frechet_distance(feats_test, feats_fake),
        "fid_per_class": per_class,
        "intra_fid": _finite_mean(per_class.values()),
        "fid_real": frechet_distance(feats_test, feats_train),
        **precision_recall(feats_test, feats_fake, k=k_pr),
        **density_coverage(feats_test, feats_fake, k=k_dc),
        "cas": cas["cas"],
        "cas_balanced": cas["cas_balanced"],
        "cas_ratio": cas["cas_ratio"],
        "real_accuracy": real_eval["accuracy"],
        "real_balanced_accuracy": real_eval["balanced_accuracy"],
        "cas_per_class": cas["cas_per_class"],
        "how": {
            "feature_extractor": extractor.name,
            "note": extractor.note,
            "reference": "real test split (unseen by the generator and the feature classifier)",
            "n_fake": len(fake_images),
            "n_per_class": int(n),
            "n_real_test": len(test_data),
            "n_real_train": len(train_data),
            "train_spec": train_data.spec,
            "test_spec": test_data.spec,
            "classifier": {"backbone": backbone, "stem": stem,
                           "model_kwargs": _model_kwargs(backbone, model_kwargs), "steps": steps,
                           "batch_size": batch_size, "augment": "standard"},
            "k_precision_recall": k_pr,
            "k_density_coverage": k_dc,
            "seed": seed,
            "classifier_cache": str(cache_path) if cache_path else None,
            "classifier_cached": cached,
            "seconds": round(time.perf_counter() - start, 1),
        },
    }


# -- the command ----------------------------------------------------------------------------------
_ROWS = [
    ("fid", "FID (test vs generated; lower is better)"),
    ("fid_real", "FID floor (test vs real train)"),
    ("intra_fid", "intra-class FID (mean over classes)"),
    ("precision", "precision (fakes that look real)"),
    ("recall", "recall (real data covered)"),
    ("density", "density (~1 is good)"),
    ("coverage", "coverage"),
    ("cas", "CAS (test accuracy, trained on fakes)"),
    ("real_accuracy", "test accuracy, trained on real"),
    ("cas_ratio", "CAS ratio (CAS / real accuracy)"),
]


def finite_json(value: Any) -> Any:
    """``value`` with NaN/inf floats replaced by None, so ``json.dumps`` writes strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(v) for v in value]
    return value


def format_metrics(result: dict[str, Any]) -> str:
    """A plain-text table of :func:`evaluate_generator`'s result, with the feature note."""
    width = max(len(label) for _, label in _ROWS)
    lines = [f"{'metric':<{width}}  value", f"{'-' * width}  ------"]
    for key, label in _ROWS:
        value = result.get(key)
        text = ("n/a" if value is None else f"{value:.4g}" if isinstance(value, float)
                else str(value))
        lines.append(f"{label:<{width}}  {text}")
    how = result.get("how", {})
    if how:
        lines.append("")
        lines.append(f"features: {how.get('feature_extractor')}")
        lines.append(f"note: {how.get('note')}")
        lines.append(f"samples: {how.get('n_fake')} generated ({how.get('n_per_class')} per class)"
                     f", {how.get('n_real_test')} real test, {how.get('n_real_train')} real train")
    return "\n".join(lines)


def evaluate_cli(args) -> int:
    """``ganaug evaluate FILE --data SPEC [--test SPEC] [--n-per-class N] [--out JSON]``."""
    from ganaug._files import atomic_write_text
    from ganaug.data import load_data
    from ganaug.io import load

    generator = load(args.file, device=getattr(args, "device", None))
    size, channels = generator.image_size, generator.channels
    if getattr(args, "test", None):
        train = load_data(args.data, size=size, channels=channels)
        test = load_data(args.test, size=size, channels=channels)
    else:
        train = load_data(args.data, split="train", size=size, channels=channels)
        test = load_data(args.data, split="test", size=size, channels=channels)
    print(f"generator: {args.file} ({generator.num_classes} classes, {channels}x{size}x{size})")
    print(f"real train: {train.spec} ({len(train)} images); real test: {test.spec} "
          f"({len(test)} images)")
    result = evaluate_generator(generator, train, test, n_per_class=args.n_per_class,
                                features=getattr(args, "features", None),
                                classifier_steps=getattr(args, "classifier_steps", None),
                                seed=getattr(args, "seed", 0), device=getattr(args, "device", None))
    result["how"]["generator_file"] = str(args.file)
    print(format_metrics(result))
    if getattr(args, "out", None):
        path = atomic_write_text(args.out, json.dumps(finite_json(result), indent=2) + "\n")
        print(f"wrote {path}")
    return 0

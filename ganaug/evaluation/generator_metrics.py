"""How good is a generator? Every metric against real data it did not see, and their table.

Distances (:mod:`ganaug.evaluation.distances`) are measured in the feature space of
:mod:`ganaug.evaluation.features`; the Classification Accuracy Score (Ravuri & Vinyals 2019,
https://arxiv.org/abs/1905.10887) trains the same classifier recipe on generated images only.
"""

from __future__ import annotations

import math
import os
import time
from typing import Any

import torch

from ganaug._checks import check_int
from ganaug._devices import DeviceLike
from ganaug._imaging import human_bytes, memory_shortfall
from ganaug.errors import GanaugConfigError, GanaugDataError
from ganaug.evaluation.classifier import check_same_classes, evaluate_classifier
from ganaug.evaluation.distances import (
    density_coverage,
    frechet_distance,
    frechet_distance_per_class,
    precision_recall,
)
from ganaug.evaluation.features import (
    DEFAULT_BACKBONE,
    DEFAULT_BATCH_SIZE,
    DEFAULT_CLASSIFIER_STEPS,
    DEFAULT_STEM,
    FeatureExtractor,
    classifier_extractor,
    evaluation_recipe,
    timm_feature_extractor,
    train_real_classifier,
)
from ganaug.evaluation.leakage import check_generator_unseen, check_unseen

__all__ = [
    "classification_accuracy_score",
    "evaluate_generator",
    "format_metrics",
    "per_class_rows",
    "useful_accuracy",
    "worst_classes",
]

#: Metrics computed in the feature classifier's feature space (when ``features`` is None).
FEATURE_METRICS = ("fid", "fid_real", "intra_fid", "precision", "recall", "density", "coverage")


def useful_accuracy(num_classes: int) -> float:
    """The test accuracy from which the feature classifier is trusted: halfway between chance
    (``1 / num_classes``) and 100 % (55 % for 10 classes, 75 % for 2).

    Below it, its features barely separate the classes, so a blurry generator can still score a
    high precision and a CAS ratio near 1 (seen: precision 0.96 and CAS ratio 0.86 from a
    classifier at 17 % on 10 classes). Fixed, not tuned: a rule a user can check by hand.
    """
    return 0.5 * (1.0 + 1.0 / max(1, num_classes))


def _weak_classifier_warning(accuracy: float, num_classes: int, gives_features: bool) -> str:
    useful = useful_accuracy(num_classes)
    hit = ("FID, intra-class FID, precision/recall, density/coverage, the fakes-recognised "
           "rates and the CAS ratio" if gives_features else
           "the fakes-recognised rates and the CAS ratio")
    return (f"WARNING: the feature classifier reaches only {100 * accuracy:.1f}% test accuracy "
            f"(chance {100 / num_classes:.1f}%, trusted from {100 * useful:.1f}%): {hit} are "
            "NOT trustworthy. Train it longer (classifier_steps=1000), give it more real "
            "training data, or pass features='NAME:WEIGHTS'.")


def per_class_rows(result: dict[str, Any], classes: list[str]) -> list[dict[str, Any]]:
    """One row per class: ``cas``, ``real_accuracy``, ``cas_ratio`` (None where the real
    classifier scores 0 or the class is not in the test split), ``fake_accuracy`` (the
    share of this class's fakes the real classifier puts in it) and ``intra_fid``."""
    rows = []
    for i, name in enumerate(map(str, classes)):
        cas = result["cas_per_class"].get(name, math.nan)
        real = result["real_accuracy_per_class"][i]
        ratio = cas / real if real and not (math.isnan(real) or math.isnan(cas)) else None
        rows.append({"class": name, "cas": cas, "real_accuracy": real, "cas_ratio": ratio,
                     "fake_accuracy": result["fake_accuracy_per_class"][i],
                     "intra_fid": result["fid_per_class"].get(name, math.nan)})
    return rows


def worst_classes(rows: list[dict[str, Any]], k: int | None = None) -> dict[str, list[str]]:
    """The ``k`` worst classes by CAS ratio (lowest), fakes recognised (lowest) and intra-class
    FID (highest); ``k`` defaults to a third of the classes, 1 to 3. Missing values are skipped;
    ties keep the class order."""
    k = k or min(3, max(1, (len(rows) - 1) // 3))

    def worst(key: str, highest: bool) -> list[str]:
        have = [r for r in rows if r[key] is not None and not math.isnan(r[key])]
        ranked = sorted(have, key=lambda r: -r[key] if highest else r[key])
        return [r["class"] for r in ranked[:k]]

    return {"cas_ratio": worst("cas_ratio", False), "fake_accuracy": worst("fake_accuracy", False),
            "intra_fid": worst("intra_fid", True)}


def _sample(generator, n_per_class: int, seed: int,
            device: DeviceLike) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = generator.sample(n_per_class=n_per_class, seed=seed, output="uint8",
                                      device=device, return_labels=True)
    return images.cpu(), labels.cpu().long()


def classification_accuracy_score(generator, test_data, *, n_per_class: int,
                                  real_accuracy: float | None = None,
                                  backbone: str = DEFAULT_BACKBONE, stem: str = DEFAULT_STEM,
                                  model_kwargs: dict[str, Any] | None = None,
                                  steps: int = DEFAULT_CLASSIFIER_STEPS,
                                  batch_size: int = DEFAULT_BATCH_SIZE, seed: int = 0,
                                  device: DeviceLike = None, progress: bool = True,
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
    images, labels = samples if samples is not None else _sample(generator, n_per_class, seed,
                                                                 device)
    recipe = evaluation_recipe(backbone, stem, model_kwargs, steps, batch_size)
    model = recipe.train((images, labels), like=test_data, seed=seed, device=device,
                         progress=progress, desc="CAS classifier")
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
    check_same_classes("the generator", list(generator.classes), what, list(data.classes))
    if (data.image_size, data.channels) != (generator.image_size, generator.channels):
        raise GanaugDataError(
            f"The generator makes {generator.channels}x{generator.image_size}x"
            f"{generator.image_size} images but {what} is {data.channels}x{data.image_size}x"
            f"{data.image_size}. Load the data with size={generator.image_size}, "
            f"channels={generator.channels} (CLI: the evaluate command does this for you).")


#: Bytes each generated image costs beyond its pixels: its features (float32, then float64 in
#: the distances, ~512 wide) and its column of a 1024-row float64 distance chunk.
_BYTES_PER_FAKE = 16 * 1024


def _check_fakes_fit(generator, n_per_class: int) -> None:
    """Refuse, before any compute, more generated images than memory holds with their
    features (the images, their features and distance chunks are all in memory at once)."""
    total = n_per_class * len(generator.classes)
    pixels = generator.channels * generator.image_size ** 2
    short = memory_shortfall(total, 2 * pixels + _BYTES_PER_FAKE)
    if short is not None:
        need, have, fits = short
        raise GanaugConfigError(
            f"n_per_class={n_per_class} asks for {total:,} generated images of "
            f"{generator.channels}x{generator.image_size}x{generator.image_size}; with their "
            f"features they need about {human_bytes(need)}, but {human_bytes(have)} of memory "
            f"is available. Ask for fewer (n_per_class="
            f"{min(max(1, fits // len(generator.classes)), 1000)}; the default is the "
            "largest real class, at most 1000).")


def _check_neighbourhoods(num_classes: int, n_per_class: int, n_test: int, k_pr: int,
                          k_dc: int) -> None:
    """Refuse, before any compute, too few fakes or test images for the k-NN metrics."""
    k = max(check_int("k_pr", k_pr), check_int("k_dc", k_dc))
    if n_per_class * num_classes <= k_pr:
        raise GanaugDataError(
            f"{n_per_class * num_classes} generated images (n_per_class={n_per_class} x "
            f"{num_classes} classes) are too few for precision/recall, which needs more than "
            f"k_pr={k_pr}. Use n_per_class={k_pr // num_classes + 1} or more.")
    if n_test <= k:
        raise GanaugDataError(
            f"The real test data has {n_test} images; precision/recall and density/coverage "
            f"need more than {k}. Use a larger test set (test=).")


def _finite_mean(values) -> float:
    vals = [v for v in values if not math.isnan(v)]
    return float(sum(vals) / len(vals)) if vals else float("nan")


def evaluate_generator(generator, train_data, test_data, *, n_per_class: int | None = None,
                       features: str | FeatureExtractor | None = None,
                       classifier_steps: int | None = None, backbone: str = DEFAULT_BACKBONE,
                       stem: str = DEFAULT_STEM, model_kwargs: dict[str, Any] | None = None,
                       batch_size: int = DEFAULT_BATCH_SIZE,
                       k_pr: int = 3, k_dc: int = 5, seed: int = 0, device: DeviceLike = None,
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
    start = time.perf_counter()
    _check_generator_fits(generator, train_data, "the training data")
    _check_generator_fits(generator, test_data, "the test data")
    check_unseen(train_data, test_data)  # the test images are held out from both
    check_generator_unseen(generator, train_data, test_data)
    steps = DEFAULT_CLASSIFIER_STEPS if classifier_steps is None else classifier_steps
    recipe = evaluation_recipe(backbone, stem, model_kwargs, steps, batch_size)
    n = (min(1000, max(train_data.class_counts())) if n_per_class is None
         else check_int("n_per_class", n_per_class, hint="Use e.g. n_per_class=100."))
    _check_fakes_fit(generator, n)
    _check_neighbourhoods(len(generator.classes), n, len(test_data), k_pr, k_dc)
    if isinstance(features, str):  # a wrong weights file is refused before minutes of compute
        features = timm_feature_extractor(features, device=device)
    real_model, cache_path, cached = train_real_classifier(
        train_data, backbone=backbone, stem=stem, model_kwargs=model_kwargs, steps=steps,
        batch_size=batch_size, seed=seed,
        device=device, cache=cache, progress=progress)
    real_eval = evaluate_classifier(real_model, test_data.images, test_data.labels, device=device)

    if features is None:
        extractor = classifier_extractor(real_model, train_data.spec, backbone, device)
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
    fake_eval = evaluate_classifier(real_model, fake_images, fake_labels, device=device)
    k = len(test_data.classes)
    useful = real_eval["accuracy"] >= useful_accuracy(k)
    result = {
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
        "real_accuracy_per_class": real_eval["per_class_accuracy"],
        "fake_accuracy": fake_eval["accuracy"],
        "fake_accuracy_per_class": fake_eval["per_class_accuracy"],
        "feature_classifier": {"test_accuracy": real_eval["accuracy"], "chance": 1.0 / k,
                               "trusted_from": useful_accuracy(k), "trusted": useful,
                               "gives_features": features is None},
        "warnings": [] if useful else [_weak_classifier_warning(real_eval["accuracy"], k,
                                                                features is None)],
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
                           "model_kwargs": recipe.model_kwargs, "steps": steps,
                           "batch_size": batch_size, "augment": recipe.augment},
            "k_precision_recall": k_pr,
            "k_density_coverage": k_dc,
            "seed": seed,
            "classifier_cache": str(cache_path) if cache_path else None,
            "classifier_cached": cached,
            "seconds": round(time.perf_counter() - start, 1),
        },
    }
    result["per_class"] = per_class_rows(result, list(test_data.classes))
    result["worst_classes"] = worst_classes(result["per_class"])
    return result


# -- the table ------------------------------------------------------------------------------------
_ROWS = [
    ("fid", "FID (test vs generated; lower is better)"),
    ("fid_real", "FID floor (test vs real train)"),
    ("intra_fid", "intra-class FID (mean over classes)"),
    ("precision", "precision (fakes that look real)"),
    ("recall", "recall (real data covered)"),
    ("density", "density (~1 is good)"),
    ("coverage", "coverage"),
    ("cas", "CAS (test accuracy, trained on fakes)"),
    ("real_accuracy", "feature classifier: test accuracy (trained on real)"),
    ("fake_accuracy", "fakes recognised (feature classifier on fakes)"),
    ("cas_ratio", "CAS ratio (CAS / real accuracy)"),
]
_PER_CLASS = [("class", "class", ""), ("cas", "CAS", ".3f"), ("real_accuracy", "real acc", ".3f"),
              ("cas_ratio", "CAS ratio", ".3f"), ("fake_accuracy", "fakes recog.", ".3f"),
              ("intra_fid", "intra-FID", ".4g")]


def format_metrics(result: dict[str, Any]) -> str:
    """A plain-text table of :func:`evaluate_generator`'s result, with the feature note."""
    warnings = list(result.get("warnings") or [])
    clf = result.get("feature_classifier") or {}
    doubtful = set()
    if clf and not clf.get("trusted", True):
        doubtful = {"cas_ratio", "fake_accuracy"} | (
            set(FEATURE_METRICS) if clf.get("gives_features") else set())
    width = max(len(label) for _, label in _ROWS)
    lines = [*warnings, ""] if warnings else []
    lines += [f"{'metric':<{width}}  value", f"{'-' * width}  ------"]
    for key, label in _ROWS:
        value = result.get(key)
        text = ("n/a" if value is None else f"{value:.4g}" if isinstance(value, float)
                else str(value))
        lines.append(f"{label:<{width}}  {text}{'  (untrustworthy)' if key in doubtful else ''}")
    if result.get("per_class"):
        lines += ["", _per_class_table(result["per_class"], result.get("worst_classes") or {})]
    how = result.get("how", {})
    if how:
        lines.append("")
        lines.append(f"features: {how.get('feature_extractor')}")
        lines.append(f"note: {how.get('note')}")
        lines.append(f"samples: {how.get('n_fake')} generated ({how.get('n_per_class')} per class)"
                     f", {how.get('n_real_test')} real test, {how.get('n_real_train')} real train")
    lines += warnings
    return "\n".join(lines)


def _per_class_table(rows: list[dict[str, Any]], worst: dict[str, list[str]]) -> str:
    short = {"cas_ratio": "CAS", "fake_accuracy": "recog.", "intra_fid": "FID"}
    flagged = {r["class"]: [short[key] for key, names in worst.items() if r["class"] in names]
               for r in rows}

    def cell(value: Any, spec: str) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "n/a"
        return format(value, spec) if spec else str(value)

    body = [[cell(r[key], spec) for key, _, spec in _PER_CLASS]
            + [f"<- worst {', '.join(flagged[r['class']])}" if flagged[r["class"]] else ""]
            for r in rows]
    widths = [max([len(h)] + [len(b[i]) for b in body]) for i, (_, h, _) in enumerate(_PER_CLASS)]
    lines = [("per class (CAS ratio = CAS / real acc; fakes recog. = share of the class's "
              "fakes the feature classifier puts in it):"),
             "  ".join(f"{h:>{w}}" for (_, h, _), w in zip(_PER_CLASS, widths))]
    lines += ["  ".join(f"{c:>{w}}" for c, w in zip(b, widths)) + f"  {b[-1]}".rstrip()
              for b in body]
    labels = {"cas_ratio": "lowest CAS ratio", "fake_accuracy": "fewest fakes recognised",
              "intra_fid": "highest intra-class FID"}
    named = [f"{labels[key]}: {', '.join(names)}" for key, names in worst.items() if names]
    if named:
        lines.append("worst classes: " + "; ".join(named))
    return "\n".join(lines)

"""The arms of an experiment: a table of what each arm trains its classifier on, and how.

Every arm trains the same :class:`~ganaug.evaluation.ClassifierRecipe`; an :class:`Arm` says only
what differs: the training data (real, real plus synthetic, synthetic), the augmentation, the
sampler and the loss weights. A new arm is one more row of :data:`ARMS`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from ganaug.augment import (
    BatchMixer,
    MixedDataset,
    SyntheticDataset,
    Teacher,
    balance_counts,
    proportional_counts,
)
from ganaug.data import LabeledImages
from ganaug.errors import GanaugConfigError, did_you_mean
from ganaug.evaluation.batches import collate_images

__all__ = ["ARMS", "BASELINE", "DEFAULT_ARMS", "IMBALANCE_ARMS", "KD_ARMS", "RECOMMENDED_ARMS",
           "RECOMMENDED_SETTINGS", "TEACHER", "Arm", "arm_data", "filter_first", "parse_arms",
           "teachers_first"]

TrainData = tuple[tuple[torch.Tensor, torch.Tensor], Callable | None, str]


@dataclass(frozen=True)
class Arm:
    """What one arm trains its classifier on, and how.

    Attributes:
        data: ``"real"`` (the real subset), ``"real+synthetic"`` (the real subset plus generated
            images, or a :class:`ganaug.BatchMixer` with ``replace_p``) or ``"synthetic"``
            (generated images only, as many as the real subset).
        augment: None, or ``"standard"`` (random crop + a flip where it suits).
        sampler: ``"uniform"`` or ``"balanced"`` (class-balanced oversampling).
        class_weights: None, or ``"balanced"`` (a class-weighted loss).
        distill: distil the seed's :attr:`teacher` classifier into this one: every batch's
            labels are blended with the teacher's soft targets
            (:class:`ganaug.Distiller`), synthetic images included.
    """

    data: str = "real"
    augment: str | None = None
    sampler: str = "uniform"
    class_weights: str | None = None
    distill: bool = False

    @property
    def uses_gan(self) -> bool:
        """Whether the arm needs the regime's generator."""
        return self.data != "real"

    @property
    def teacher(self) -> str:
        """The arm whose classifier (same seed) teaches this one (``distill``) and filters its
        synthetic images (``teacher_filter``): its real-only counterpart, trained the same way
        without the GAN or distillation. A class-weighted arm learns from ``real+weighted``: a
        ``real+aug`` teacher, biased towards the head classes, would undo its weighting."""
        if self.class_weights is not None:
            return "real+weighted"
        return "real+oversample" if self.sampler == "balanced" else TEACHER


ARMS: dict[str, Arm] = {
    "real": Arm(),
    "real+aug": Arm(augment="standard"),
    "real+gan": Arm(data="real+synthetic"),
    "real+aug+gan": Arm(data="real+synthetic", augment="standard"),
    "gan": Arm(data="synthetic"),
    "real+weighted": Arm(augment="standard", class_weights="balanced"),
    "real+oversample": Arm(augment="standard", sampler="balanced"),
    "real+weighted+gan": Arm(data="real+synthetic", augment="standard", class_weights="balanced"),
    "real+oversample+gan": Arm(data="real+synthetic", augment="standard", sampler="balanced"),
    "real+aug+kd": Arm(augment="standard", distill=True),
    "real+aug+gan+kd": Arm(data="real+synthetic", augment="standard", distill=True),
    "real+weighted+kd": Arm(augment="standard", class_weights="balanced", distill=True),
    "real+weighted+gan+kd": Arm(data="real+synthetic", augment="standard",
                                class_weights="balanced", distill=True),
}
DEFAULT_ARMS = ("real", "real+aug", "real+gan", "real+aug+gan", "gan")
# Added to every long-tailed (``imbalance``) run: the usual remedies, to compare the GAN with.
IMBALANCE_ARMS = ("real+weighted", "real+oversample", "real+weighted+gan",
                  "real+oversample+gan")
# Opt-in (``--arms``): distillation from the seed's real+aug classifier, on real images only (a
# control: does a gain come from distillation alone?) and with the GAN's images relabelled; the
# same two with a class-weighted loss, taught by real+weighted (the recipe combined with the long
# tail's usual fix).
KD_ARMS = ("real+aug+kd", "real+aug+gan+kd", "real+weighted+kd", "real+weighted+gan+kd")
# The recipe ganaug recommends, fixed on mnist5k at 10 real images per class on seed 0 (then run
# once on the other seeds: docs/results.md): the GAN's images relabelled by a teacher trained on
# the real data, the images it disagrees with most dropped, their loss down-weighted; shown with
# the controls that say whether a gain comes from the GAN (real+aug+kd: the same teacher, real
# images only).
RECOMMENDED_ARMS = ("real", "real+aug", "real+aug+kd", "real+aug+gan+kd")
RECOMMENDED_SETTINGS: dict[str, float] = {"teacher_filter": 0.1, "synthetic_loss_weight": 0.3}
# What users already do: every other arm is reported as a paired difference against it.
BASELINE = "real+aug"
# The arm whose classifier (same seed) teaches the ``distill`` arms without a long-tail fix.
TEACHER = "real+aug"


def parse_arms(arms: str | Sequence | None, imbalance: float | None) -> list[str]:
    """Checked arm names; imbalanced runs also get :data:`IMBALANCE_ARMS` (their GAN versions
    only when a GAN arm is asked for: a GAN nobody asked for costs hours), and a ``distill``
    arm brings its :attr:`Arm.teacher` (run first)."""
    if arms is not None and not isinstance(arms, (str, Sequence)):
        raise GanaugConfigError(f"--arms takes arm names, comma-separated, or a list of them; "
                                f"got {arms!r}.")
    items = list(DEFAULT_ARMS) if arms is None else (
        [a.strip() for a in arms.split(",") if a.strip()] if isinstance(arms, str) else list(arms))
    if not items:
        raise GanaugConfigError(f"--arms names no arm (got {arms!r}); give one or more of "
                                f"{', '.join(ARMS)}, comma-separated, or leave it out for "
                                f"{','.join(DEFAULT_ARMS)}.")
    for arm in items:
        if arm not in ARMS:
            raise GanaugConfigError(f"Unknown arm '{arm}'. Available: {', '.join(ARMS)}."
                                    + did_you_mean(arm, ARMS))
    if imbalance is not None:
        wants_gan = any(ARMS[a].uses_gan for a in items)
        items += [a for a in IMBALANCE_ARMS
                  if a not in items and (wants_gan or not ARMS[a].uses_gan)]
    items = list(dict.fromkeys(items))
    items = [t for t in dict.fromkeys(ARMS[a].teacher for a in items if ARMS[a].distill)
             if t not in items] + items
    # A teacher's cell is trained before any distilled one.
    return [a for a in items if not ARMS[a].distill] + [a for a in items if ARMS[a].distill]


def filter_first(arms: Sequence[str]) -> list[str]:
    """``arms`` with ``real`` moved (or added) to the front when any arm uses the GAN: under
    ``min_confidence`` its classifier filters their synthetic images, so it trains first."""
    if not any(ARMS[a].uses_gan for a in arms):
        return list(arms)
    return ["real"] + [a for a in arms if a != "real"]


def teachers_first(arms: Sequence[str], taught: Callable[[str], bool]) -> list[str]:
    """``arms`` with the :attr:`Arm.teacher` of every arm ``taught`` says learns from one moved
    (or added) to the front: a teacher's cell is trained before any arm it teaches."""
    teachers = list(dict.fromkeys(ARMS[a].teacher for a in arms if taught(a)))
    return teachers + [a for a in arms if a not in teachers]


# -- the training data of each kind of arm --------------------------------------------------------
def _materialize(dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """All items of a ``(PIL or tensor, int)`` dataset as uint8 ``(N, C, H, W)`` + int64."""
    images, labels = [], []
    for x, y in DataLoader(dataset, batch_size=256, shuffle=False, collate_fn=collate_images):
        images.append(x)
        labels.append(y.long())
    return torch.cat(images), torch.cat(labels)


def _real_data(subset, generator, *, seed, keep, synthetic_ratio, replace_p,
               balanced) -> TrainData:
    return (subset.images, subset.labels), None, f"{len(subset)} real"


def _synthetic_data(subset, generator, *, seed, keep, synthetic_ratio, replace_p,
                    balanced) -> TrainData:
    per = math.ceil(len(subset) / subset.num_classes)
    synth = SyntheticDataset(generator, per, classes=subset.classes, seed=seed, **keep).generate()
    images, labels = _materialize(synth)
    return (images, labels), None, f"{len(images)} synthetic ({per} per class)"


def _mixed_data(subset, generator, *, seed, keep, synthetic_ratio, replace_p,
                balanced) -> TrainData:
    if replace_p is not None:
        mixer = BatchMixer(generator, fraction=replace_p, classes=subset.classes, seed=seed)
        return ((subset.images, subset.labels), mixer,
                f"{len(subset)} real, {replace_p:.0%} of each batch replaced")
    real_counts = subset.class_counts()
    budget = round(synthetic_ratio * sum(real_counts))
    if balanced:
        counts = balance_counts(real_counts, "uniform", budget=budget)
    else:
        counts = proportional_counts(real_counts, budget)
    synth = SyntheticDataset(generator, dict(zip(subset.classes, counts)),
                             classes=subset.classes, seed=seed, **keep).generate()
    images, labels = _materialize(MixedDataset(synth, subset.to_dataset(),
                                               classes=subset.classes))
    return (images, labels), None, f"{len(subset)} real + {sum(counts)} synthetic"


_ARM_DATA = {"real": _real_data, "real+synthetic": _mixed_data, "synthetic": _synthetic_data}


def arm_data(arm: Arm, subset: LabeledImages, generator, *, seed: int,
             synthetic_ratio: float = 1.0, replace_p: float | None = None,
             balanced: bool = False, filter_model: nn.Module | None = None,
             min_confidence: float | None = None) -> TrainData:
    """The training data of ``arm`` on the real ``subset``: ``(train_data, mixer, note)``.

    Args:
        arm: a row of :data:`ARMS`.
        subset: the real training images of the regime and seed.
        generator: the regime's generator (unused by real-only arms).
        seed: seeds the synthetic images.
        synthetic_ratio: synthetic images appended per real image.
        replace_p: instead of appending, a :class:`ganaug.BatchMixer` replacing this fraction of
            each batch.
        balanced: fill the rarest classes first (long-tailed data) instead of keeping the
            class proportions.
        filter_model, min_confidence: keep only synthetic images that ``filter_model`` assigns to
            their class with at least ``min_confidence`` (a GAN arm given ``min_confidence``
            needs ``filter_model``).

    Returns:
        ``(images uint8 (N, C, H, W), labels (N,))``, the mixer or None, and a note for reports.

    Raises:
        GanaugConfigError: a GAN arm with ``min_confidence`` but no ``filter_model`` (its
            synthetic images would go unfiltered while its settings say otherwise).
    """
    if arm.uses_gan and min_confidence is not None and filter_model is None:
        raise GanaugConfigError(f"min_confidence={min_confidence} filters a GAN arm's synthetic "
                                "images by a classifier, but no filter_model was given (they "
                                "would go unfiltered); pass the real arm's classifier.")
    keep: dict[str, Any] = {}
    if min_confidence is not None and filter_model is not None:
        keep = {"teacher": Teacher(filter_model, drop_hardest=0.0, min_confidence=min_confidence)}
    return _ARM_DATA[arm.data](subset, generator, seed=seed, keep=keep,
                               synthetic_ratio=synthetic_ratio, replace_p=replace_p,
                               balanced=balanced)

"""What decides an experiment's numbers: :class:`ExperimentSettings`, checked once on creation,
and the settings each cached cell must match to be reused (:meth:`ExperimentSettings.cell_key`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ganaug._checks import MAX_SEED, check_float, check_int, check_probability
from ganaug._devices import DeviceLike, resolve_device
from ganaug.augment.teacher import LABEL_WEIGHT, TEMPERATURE
from ganaug.errors import GanaugConfigError
from ganaug.evaluation.arms import ARMS, BASELINE, TEACHER, filter_first, parse_arms, teachers_first
from ganaug.evaluation.classifier import check_stem, check_timm_name
from ganaug.evaluation.recipe import ClassifierRecipe
from ganaug.evaluation.regime import check_gan_config, parse_regimes

__all__ = ["EXPERIMENT_CLASSIFIER_STEPS", "ExperimentSettings"]

EXPERIMENT_CLASSIFIER_STEPS = 500


# -- settings -------------------------------------------------------------------------------------
# The settings a cached cell must match to be reused (in this order in results.json).
_CELL_KEYS = ("data", "test", "imbalance", "backbone", "stem", "classifier_steps", "batch_size",
              "gan_steps", "generator", "image_size", "synthetic_ratio", "replace_p",
              "min_confidence", "model_kwargs", "kd_temperature", "kd_alpha", "teacher_filter",
              "synthetic_loss_weight", "teacher_backbone", "gan_config")
# Settings that cannot change an arm without synthetic images, without distillation, or without
# a teacher: left out of that arm's cell key, so changing them reuses the cells they cannot touch.
_GAN_KEYS = ("gan_steps", "generator", "synthetic_ratio", "replace_p", "min_confidence",
             "teacher_filter", "synthetic_loss_weight", "gan_config")
_KD_KEYS = ("kd_temperature", "kd_alpha")
_TEACHER_KEYS = ("teacher_backbone",)


@dataclass
class ExperimentSettings:
    """Everything that decides an experiment's numbers; checked and normalised on creation.

    The arguments of :func:`run_experiment` (``regimes`` is its ``per_class``). After creation
    ``regimes`` and ``arms`` are lists of names, ``classifier_steps`` and ``synthetic_ratio`` have
    their defaults (500 and 1.0), ``model_kwargs`` and ``gan_config`` are dicts, ``generator`` a
    string or None and ``device`` a :class:`torch.device`. ``channels`` converts the data (it is
    set from the generator when one is given).

    Raises:
        GanaugConfigError: an invalid regime, arm, seed count, ratio or probability, an invalid
            classifier budget or ``gan_config``.
    """

    data: str
    test: str | None = None
    regimes: str | Sequence = "all"
    arms: str | Sequence | None = None
    seeds: int = 3
    first_seed: int = 0
    imbalance: float | None = None
    backbone: str = "resnet18"
    stem: str = "auto"
    model_kwargs: dict[str, Any] | None = None
    classifier_steps: int | None = None
    batch_size: int = 128
    gan_steps: int | None = None
    gan_config: dict[str, Any] | None = None
    generator: str | os.PathLike | None = None
    image_size: int | None = None
    channels: int | None = None
    synthetic_ratio: float | None = None
    replace_p: float | None = None
    min_confidence: float | None = None
    kd_temperature: float = TEMPERATURE
    kd_alpha: float = LABEL_WEIGHT
    teacher_filter: float | None = None
    synthetic_loss_weight: float = 1.0
    teacher_backbone: str | None = None
    device: DeviceLike = None
    progress: bool = True

    def __post_init__(self) -> None:
        self.regimes = parse_regimes(self.regimes)
        self.arms = parse_arms(self.arms, self.imbalance)
        self.seeds = check_int("seeds", self.seeds, maximum=MAX_SEED + 1, hint="Use e.g. seeds=3.")
        self.first_seed = check_int("first_seed", self.first_seed, minimum=0,
                                    maximum=MAX_SEED + 1 - self.seeds,
                                    hint="Use e.g. first_seed=0.")
        if self.replace_p is not None:
            check_float("replace_p", self.replace_p, minimum=0.0, maximum=1.0, open_min=True,
                        hint="Use e.g. replace_p=0.5.")
        if self.synthetic_ratio is not None:
            check_float("synthetic_ratio", self.synthetic_ratio, minimum=0.0, open_min=True,
                        hint="Use e.g. synthetic_ratio=1.0.")
        if self.min_confidence is not None:
            check_probability("min_confidence", self.min_confidence)
            self.arms = filter_first(self.arms)  # the real arm's classifier filters
        self.kd_temperature = check_float("kd_temperature", self.kd_temperature, minimum=0.0,
                                          open_min=True, hint="Use e.g. kd_temperature=4.")
        self.kd_alpha = check_float("kd_alpha", self.kd_alpha, minimum=0.0, maximum=1.0,
                                    hint="Use e.g. kd_alpha=0.5.")
        self.synthetic_loss_weight = check_float(
            "synthetic_loss_weight", self.synthetic_loss_weight, minimum=0.0, open_min=True,
            hint="Use e.g. synthetic_loss_weight=0.1.")
        if isinstance(self.teacher_backbone, str) and not self.teacher_backbone.strip():
            raise GanaugConfigError(f"teacher_backbone must be a timm model name (e.g. "
                                    f"teacher_backbone='resnet18'), got "
                                    f"{self.teacher_backbone!r}. Leave it out to use each "
                                    "seed's own classifiers (real+aug, real+weighted).")
        # Before any cell trains, not when the first classifier is built.
        check_timm_name(self.backbone)
        if self.teacher_backbone is not None:
            check_timm_name(self.teacher_backbone, "teacher_backbone")
        check_stem(self.stem)
        if self.imbalance is not None:
            self.imbalance = check_float("imbalance", self.imbalance, minimum=1.0,
                                         hint="Use e.g. imbalance=10.")
        for name in ("gan_steps", "image_size", "classifier_steps"):  # None: the default
            if getattr(self, name) is not None:
                setattr(self, name, check_int(name, getattr(self, name)))
        if not isinstance(self.model_kwargs, (dict, type(None))):
            raise GanaugConfigError(f"model_kwargs must be a mapping of timm.create_model "
                                    f"arguments, got {self.model_kwargs!r}.")
        if self.teacher_filter is not None:
            check_float("teacher_filter", self.teacher_filter, minimum=0.0, maximum=1.0,
                        open_max=True, hint="Use e.g. teacher_filter=0.2.")
            if self.replace_p is not None:
                raise GanaugConfigError(
                    "teacher_filter= drops appended synthetic images, but replace_p= draws "
                    "them inside each batch; use one of the two.")
            self.arms = teachers_first(self.arms, self.needs_teacher)
        self.classifier_steps = self.classifier_steps or EXPERIMENT_CLASSIFIER_STEPS
        self.synthetic_ratio = self.synthetic_ratio or 1.0
        self.model_kwargs = dict(self.model_kwargs or {})
        self.gan_config = check_gan_config(self.gan_config, generator=self.generator,
                                           gan_steps=self.gan_steps)
        self.generator = str(self.generator) if self.generator else None
        self.device = resolve_device(self.device)
        self.recipe(None)  # checks the classifier budget before any data is loaded

    @property
    def baseline(self) -> str:
        """The arm every other arm is compared with: ``real+aug``, else the first arm."""
        return BASELINE if BASELINE in self.arms else self.arms[0]

    def recipe(self, augment: str | None) -> ClassifierRecipe:
        """The classifier recipe of an arm with this ``augment``."""
        return ClassifierRecipe(backbone=self.backbone, stem=self.stem,
                                model_kwargs=self.model_kwargs, steps=self.classifier_steps,
                                batch_size=self.batch_size, augment=augment)

    def teacher_recipe(self) -> ClassifierRecipe:
        """The recipe of a ``teacher_backbone`` teacher: ``real+aug``'s, with that backbone at
        its own default width (``model_kwargs`` belong to the student's backbone)."""
        return ClassifierRecipe(backbone=self.teacher_backbone, stem=self.stem,
                                steps=self.classifier_steps, batch_size=self.batch_size,
                                augment="standard")

    @property
    def gan_arms(self) -> list[str]:
        """The arms that use the regime's generator."""
        return [a for a in self.arms if ARMS[a].uses_gan]

    def needs_teacher(self, arm: str) -> bool:
        """Whether ``arm`` uses a teacher (``+kd``, or ``teacher_filter`` on a GAN arm)."""
        return ARMS[arm].distill or (ARMS[arm].uses_gan and self.teacher_filter is not None)

    def cell_key(self, arm: str | None = None) -> dict[str, Any]:
        """The settings a cached cell of ``arm`` must match to be reused (all with None)."""
        keys = list(_CELL_KEYS)
        if arm is not None:
            drop = set()
            if not ARMS[arm].uses_gan:
                drop.update(_GAN_KEYS)
            if not ARMS[arm].distill:
                drop.update(_KD_KEYS)
            if not self.needs_teacher(arm):
                drop.update(_TEACHER_KEYS)
            keys = [k for k in keys if k not in drop]
        key = {k: getattr(self, k) for k in keys}
        if arm is not None and self.needs_teacher(arm) and self.teacher_backbone is None:
            # Unset for real+aug, the only teacher before the long-tail arms had their own.
            key["teacher_arm"] = None if ARMS[arm].teacher == TEACHER else ARMS[arm].teacher
        return key

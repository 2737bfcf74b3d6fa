"""GAN augmentation as an albumentations transform.

``A.Compose([ganaug.albumentations.GANAugment("generator.safetensors", p=0.3), ...])(image=img,
label=y)`` replaces the image by a synthetic image of class ``y`` with probability ``p``. The
model travels as a path, so ``A.to_dict``/``A.save`` serialise the transform (import
``ganaug.albumentations`` before ``A.from_dict``/``A.load``). albumentations 2.0.8 does not
reseed a transform's generators per DataLoader worker; this transform reseeds itself lazily
from ``torch.utils.data.get_worker_info().seed`` so workers do not repeat each other. The
documented (and serialised) import path is ``ganaug.albumentations``, which re-exports it.
"""

from __future__ import annotations

import os
import random
from typing import Any

import albumentations as A
import numpy as np
import torch

from ganaug._checks import check_int, check_probability, check_truncation
from ganaug._seeding import WorkerStream, worker_stream_seed
from ganaug.augment.classes import ClassMap, parse_classes
from ganaug.augment.functional import check_unnormalised, match_image
from ganaug.augment.source import SampleBank
from ganaug.errors import GanaugConfigError, GanaugDataError
from ganaug.generator import Generator

__all__ = ["GANAugment"]

#: Targets that describe the image's content: stale once the image is replaced.
SPATIAL_TARGETS = ("mask", "masks", "bboxes", "keypoints", "volume", "volumes", "mask3d",
                   "masks3d")


class GANAugment(A.ImageOnlyTransform):
    """Replace ``image`` by a synthetic image of class ``data[label_key]`` with probability p.

    The image is NumPy ``(H, W, C)`` or ``(H, W)``: uint8 in [0, 255], or float32 in [0, 1];
    the output keeps the dtype, shape and channels (resized when the generator's size
    differs). Randomness comes from the transform's own ``random_generator`` (so
    ``A.Compose(..., seed=s)`` reproduces a run); it is reseeded once per process from its
    current state, mixed with the worker seed inside a DataLoader worker.

    Args:
        generator: model file path (serialisable). A :class:`ganaug.Generator` also works,
            but then ``A.save`` cannot write the transform to JSON.
        p: replacement probability in [0, 1].
        label_key: name of the keyword target holding the label (``aug(image=x, label=y)``).
        classes: the dataset's classes: names in label order, ``{name: label}``, or
            ``"generator"`` when the labels are the generator's own class indices. Label ``i``
            becomes the generator's class of the same name. Without it only class-name labels
            work; an int label is refused.
        only_classes: replace only samples of these classes (names).
        seed: seeds the transform's generators (``Compose(seed=)`` overrides it). Like every
            albumentations seed, it is not serialised.
        bank_size: images generated per refill and class.
        truncation: in (0, 1], see :meth:`ganaug.Generator.noise`.
        reuse: times each generated image is served (see :class:`ganaug.augment.SampleBank`).

    A sample whose ``mask``/``masks``/``bboxes``/``keypoints`` (or 3-D masks/volumes) are not
    empty is refused: a synthetic image has none of the real image's objects.

    Raises:
        GanaugConfigError: bad ``p``/``bank_size``/``truncation``/``reuse``/``only_classes``,
            or a bad model file; ``A.to_dict`` of a transform holding a live generator; (when
            called) an int label with no ``classes``.
        GanaugDataError: class names the generator lacks; (when called) the label is missing
            or not one of the generator's, a float image outside [0, 1] (after
            ``A.Normalize``), or spatial targets that the replacement would leave stale.
    """

    # albumentations registers (and serialises) a transform under its module's name: keep the
    # documented one, so saved pipelines and pickles name ganaug.albumentations.GANAugment.
    __module__ = "ganaug.albumentations"

    def __init__(self, generator: str | os.PathLike | Generator, p: float = 0.5,
                 label_key: str = "label", classes: Any = None, only_classes: Any = None,
                 seed: int | None = None, bank_size: int = 64, truncation: float = 1.0,
                 reuse: int = 1) -> None:
        """Build the transform; the arguments are described in its class docstring."""
        self._stream = WorkerStream()  # before super().__init__, which calls set_random_seed
        super().__init__(p=check_probability("p", p))
        self.generator = str(generator) if isinstance(generator, os.PathLike) else generator
        self.label_key = str(label_key)
        self.bank_size = check_int("bank_size", bank_size)
        self.truncation = check_truncation(truncation)
        self.reuse = check_int("reuse", reuse)
        self.bank = SampleBank(self.generator, bank_size=self.bank_size,
                               truncation=self.truncation, reuse=self.reuse)
        parsed = parse_classes(classes)
        self.classes = parsed  # serialised: {name: label} or "generator"
        self.class_map = ClassMap(self.bank.classes, parsed,
                                  where="ganaug.albumentations.GANAugment")
        self._only = (None if only_classes is None else
                      self.class_map.names_to_generator(only_classes, arg="only_classes"))
        self.only_classes = None if only_classes is None else list(only_classes)
        if seed is not None:
            self.set_random_seed(seed)

    @property
    def targets_as_params(self) -> list[str]:
        return [self.label_key]

    def set_random_seed(self, seed: int | None) -> None:
        super().set_random_seed(seed)
        self._stream.reset()  # restart the bank's stream from the new generator state

    def _ensure_stream(self) -> None:
        if not self._stream.due():
            return
        # Worker copies share one generator state; mix in the worker seed (2.0.8 does not).
        mixed = worker_stream_seed(int(self.random_generator.integers(2**62)))
        self.random_generator = np.random.default_rng(mixed)
        self.py_random = random.Random(mixed)
        self.bank.reseed(int(self.random_generator.integers(2**62)))
        self._stream.claim()

    def __call__(self, *args: Any, force_apply: bool = False, **kwargs: Any) -> Any:
        if self.label_key not in kwargs and not args:
            raise GanaugDataError(
                f"ganaug.albumentations.GANAugment needs the label: call the pipeline as "
                f"aug(image=img, {self.label_key}=y) (got keys: {', '.join(sorted(kwargs))}), "
                "or set label_key= to the name you pass.")
        stale = [key for key in (*SPATIAL_TARGETS, *self._extra_targets(SPATIAL_TARGETS))
                 if _not_empty(kwargs.get(key))]
        if stale:
            raise GanaugDataError(
                f"ganaug.albumentations.GANAugment replaces the whole image, so the sample's "
                f"{', '.join(stale)} would no longer match it. Use it in pipelines of image "
                "and label only (classification), or apply it to the samples without "
                f"{' / '.join(stale)}.")
        extra = [key for key in ("images", *self._extra_targets(("image", "images")))
                 if _not_empty(kwargs.get(key))]
        if extra:
            raise GanaugDataError(
                f"ganaug.albumentations.GANAugment draws one fake per call, and one label names "
                f"the class of one image, but the call also gives {', '.join(extra)} (every "
                f"image would become the same fake). Call the pipeline once per image: "
                f"aug(image=img, {self.label_key}=y).")
        check_unnormalised(kwargs.get("image"), "ganaug.albumentations.GANAugment",
                           "Put GANAugment before A.Normalize (float images must be in [0, 1]).")
        self._ensure_stream()
        return super().__call__(*args, force_apply=force_apply, **kwargs)

    def add_targets(self, additional_targets: dict[str, str]) -> None:
        # albumentations keeps only the image-like ones (an image-only transform's keys);
        # remember them all, so a mask or boxes alias (``{"mask2": "mask"}``) is seen too
        super().add_targets(additional_targets)
        self.__dict__.setdefault("_compose_targets", {}).update(additional_targets)

    def _extra_targets(self, kinds: tuple[str, ...]) -> list[str]:
        """Compose's ``additional_targets`` of these kinds (``{"image2": "image"}``,
        ``{"mask2": "mask"}``): aliases of the targets refused under their own names."""
        extra = {**(getattr(self, "_additional_targets", None) or {}),
                 **self.__dict__.get("_compose_targets", {})}
        return [key for key, kind in extra.items() if kind in kinds and key not in kinds]

    def get_params_dependent_on_data(self, params: dict[str, Any],
                                     data: dict[str, Any]) -> dict[str, Any]:
        cls = self.class_map(data[self.label_key])
        if self._only is not None and cls not in self._only:
            return {"fake": None}
        return {"fake": self.bank.draw(cls)}

    def apply(self, img: np.ndarray, fake: torch.Tensor | None = None, **params: Any) -> np.ndarray:
        if fake is None:
            return img
        if not isinstance(img, np.ndarray):
            raise GanaugDataError(f"image must be a NumPy (H, W, C) array, got {type(img).__name__}.")
        return match_image(fake, img)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("generator", "p", "label_key", "classes", "only_classes", "bank_size",
                "truncation", "reuse")

    def to_dict_private(self) -> dict[str, Any]:
        if not isinstance(self.generator, str):
            raise GanaugConfigError(
                "ganaug.albumentations.GANAugment holds a live generator, which A.to_dict/A.save "
                "cannot write. Save it (ganaug.save(gen, 'generator.safetensors')) and pass "
                "the path: GANAugment('generator.safetensors', ...).")
        return super().to_dict_private()


def _not_empty(value: Any) -> bool:
    """A target that holds something (``None``, empty lists and arrays hold nothing)."""
    if value is None:
        return False
    if isinstance(value, np.ndarray):
        return value.size > 0
    if isinstance(value, (list, tuple)):
        return len(value) > 0
    return True

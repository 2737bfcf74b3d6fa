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
from ganaug.augment.functional import match_image
from ganaug.augment.source import SampleBank
from ganaug.augment.transform import sample_class
from ganaug.errors import GanaugDataError
from ganaug.generator import Generator

__all__ = ["GANAugment"]


class GANAugment(A.ImageOnlyTransform):
    """Replace ``image`` by a synthetic image of class ``data[label_key]`` with probability p.

    The image is NumPy ``(H, W, C)`` or ``(H, W)``: uint8 in [0, 255], or float32 in [0, 1];
    the output keeps the dtype, shape and channels (resized when the generator's size
    differs). Randomness comes from the transform's own ``random_generator`` (so
    ``A.Compose(..., seed=s)`` reproduces a run); it is reseeded once per process from its
    current state, mixed with the worker seed inside a DataLoader worker.

    Args:
        generator_path: model file path (serialisable). A :class:`ganaug.Generator` also
            works but then ``A.save`` cannot write the transform to JSON.
        p: replacement probability in [0, 1].
        label_key: name of the keyword target holding the int label (``aug(image=x, label=y)``).
        seed: seeds the transform's generators (``Compose(seed=)`` overrides it). Like every
            albumentations seed, it is not serialised.
        bank_size: images generated per refill and class.
        truncation: in (0, 1], see :meth:`ganaug.Generator.noise`.

    Raises:
        GanaugConfigError: bad ``p``/``bank_size``/``truncation``, or a bad model file.
        GanaugDataError: (when called) the label is missing or not one of the generator's.
    """

    # albumentations registers (and serialises) a transform under its module's name: keep the
    # documented one, so saved pipelines and pickles name ganaug.albumentations.GANAugment.
    __module__ = "ganaug.albumentations"

    def __init__(self, generator_path: str | os.PathLike | Generator, p: float = 0.5,
                 label_key: str = "label", seed: int | None = None, bank_size: int = 64,
                 truncation: float = 1.0) -> None:
        self._stream = WorkerStream()  # before super().__init__, which calls set_random_seed
        super().__init__(p=check_probability("p", p))
        self.generator_path = (str(generator_path) if isinstance(generator_path, os.PathLike)
                               else generator_path)
        self.label_key = str(label_key)
        self.bank_size = check_int("bank_size", bank_size)
        self.truncation = check_truncation(truncation)
        self.bank = SampleBank(self.generator_path, bank_size=self.bank_size,
                               truncation=self.truncation)
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
        self._ensure_stream()
        return super().__call__(*args, force_apply=force_apply, **kwargs)

    def get_params_dependent_on_data(self, params: dict[str, Any],
                                     data: dict[str, Any]) -> dict[str, Any]:
        cls = sample_class(data[self.label_key], self.bank.classes,
                           where="ganaug.albumentations.GANAugment")
        return {"fake": self.bank.draw(cls)}

    def apply(self, img: np.ndarray, fake: torch.Tensor | None = None, **params: Any) -> np.ndarray:
        if fake is None:
            return img
        if not isinstance(img, np.ndarray):
            raise GanaugDataError(f"image must be a NumPy (H, W, C) array, got {type(img).__name__}.")
        return match_image(fake, img)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("generator_path", "p", "label_key", "bank_size", "truncation")

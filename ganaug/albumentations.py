"""GAN augmentation as an albumentations transform.

``A.Compose([ganaug.albumentations.GANAugment("generator.safetensors", p=0.3), ...])(image=img,
label=y)`` replaces the image by a synthetic image of class ``y`` with probability ``p``. The
model travels as a path, so ``A.to_dict``/``A.save`` serialise the transform (import
``ganaug.albumentations`` before ``A.from_dict``/``A.load``). albumentations 2.0.8 does not
reseed a transform's generators per DataLoader worker; this transform reseeds itself lazily
from ``torch.utils.data.get_worker_info().seed`` so workers do not repeat each other.
"""

from __future__ import annotations

import os
from typing import Any

import albumentations as A
import numpy as np
import torch

from ganaug.errors import GanaugDataError
from ganaug.generator import Generator
from ganaug.transforms import (
    SampleBank,
    check_positive,
    check_probability,
    derive_seed,
    label_to_index,
    match_image,
    worker_key,
)

__all__ = ["GANAugment"]


class GANAugment(A.ImageOnlyTransform):
    """Replace ``image`` by a synthetic image of class ``data[label_key]`` with probability p.

    The image is NumPy ``(H, W, C)`` or ``(H, W)``: uint8 in [0, 255], or float32 in [0, 1];
    the output keeps the dtype, shape and channels (resized when the generator's size
    differs). Randomness comes from the transform's own ``random_generator`` (so
    ``A.Compose(..., seed=s)`` reproduces a run); inside a DataLoader worker it is reseeded
    once per worker from ``(current state, worker seed)``.

    Args:
        generator_path: model file path (serialisable). A :class:`ganaug.Generator` also
            works but then ``A.save`` cannot write the transform to JSON.
        p: replacement probability in [0, 1].
        label_key: name of the keyword target holding the int label (``aug(image=x, label=y)``).
        seed: seeds the transform's generators (``Compose(seed=)`` overrides it). Like every
            albumentations seed, it is not serialised.
        bank_size: images generated per refill and class.
        truncation: see :meth:`ganaug.Generator.noise`.

    Raises:
        GanaugConfigError: bad ``p``/``bank_size``, or a bad model file.
        GanaugDataError: (when called) the label is missing or not one of the generator's.
    """

    def __init__(self, generator_path: str | os.PathLike | Generator, p: float = 0.5,
                 label_key: str = "label", seed: int | None = None, bank_size: int = 64,
                 truncation: float = 1.0) -> None:
        super().__init__(p=check_probability("p", p))
        self.generator_path = (str(generator_path) if isinstance(generator_path, os.PathLike)
                               else generator_path)
        self.label_key = str(label_key)
        self.bank_size = check_positive("bank_size", bank_size)
        self.truncation = float(truncation)
        self.bank = SampleBank(self.generator_path, bank_size=self.bank_size,
                               truncation=self.truncation)
        self._owner: tuple | None = None
        if seed is not None:
            self.set_random_seed(seed)

    @property
    def targets_as_params(self) -> list[str]:
        return [self.label_key]

    def set_random_seed(self, seed: int | None) -> None:
        super().set_random_seed(seed)
        self._owner = None  # restart the bank's stream from the new generator state

    def _ensure_stream(self) -> None:
        key = worker_key()
        if self._owner == key:
            return
        if key[2] is not None:
            # Worker copies share one generator state; mix in the worker seed (2.0.8 does not).
            base = int(self.random_generator.integers(2**62))
            mixed = derive_seed(base, key[2])
            self.random_generator = np.random.default_rng(mixed)
            import random

            self.py_random = random.Random(mixed)
        self.bank.reseed(int(self.random_generator.integers(2**62)))
        self._owner = key

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
        cls = label_to_index(data[self.label_key], self.bank.generator,
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

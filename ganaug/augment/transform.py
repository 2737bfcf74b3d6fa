"""GAN augmentation as a label-aware torchvision v2 transform, and :func:`with_labels`.

:class:`GANAugment` replaces a sample's image by a synthetic image of the same class with
probability ``p``, keeping the input's type, size and channels (GAN augmentation:
https://arxiv.org/abs/1711.04340). Like every v2 transform it draws its randomness in
``make_params`` and applies it deterministically in ``transform``. :func:`with_labels` lets it see
the label of ImageFolder/CIFAR10-style datasets, which call ``transform(image)`` alone.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import PIL.Image
import torch
from torch.utils._pytree import tree_flatten, tree_unflatten
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from ganaug._checks import check_probability
from ganaug.augment.functional import label_to_index, match_image
from ganaug.augment.source import GeneratorSource, SampleBank
from ganaug.errors import GanaugDataError
from ganaug.generator import Generator

__all__ = ["GANAugment", "LabeledTransformDataset", "default_labels_getter", "with_labels"]

LABEL_KEYS = ("label", "labels", "target", "targets")


def default_labels_getter(sample: Any) -> Any:
    """Find the label in a ``(image, label, ...)`` tuple/list or an ``{"image", "label"}`` dict.

    Returns the label object itself (an int, a 0-d/1-element tensor, a str class name), or
    ``None`` when the sample has no label. Dict keys tried: label, labels, target, targets.
    """
    if isinstance(sample, Mapping):
        lowered = {str(k).lower(): k for k in sample}
        for key in LABEL_KEYS:
            if key in lowered:
                return sample[lowered[key]]
        return None
    if isinstance(sample, (tuple, list)) and len(sample) >= 2:
        second = sample[1]
        if isinstance(second, Mapping):
            return default_labels_getter(second)
        return second
    return None


def sample_class(label: Any, classes: list[str], *, where: str) -> int:
    """The class index of a sample's label, as a :class:`GanaugDataError` naming ``where``."""
    try:
        return label_to_index(label, classes, error=GanaugDataError,
                              fix="Use a generator trained on the same classes as the dataset.")
    except GanaugDataError as err:
        raise GanaugDataError(f"{where}: {err}") from None


class GANAugment(v2.Transform):
    """Replace a sample's image by a synthetic image of its class with probability ``p``.

    Works on ``(image, label)`` tuples and ``{"image": ..., "label": ...}`` dicts, alone or in
    ``v2.Compose``. The image keeps its type, size and channels: PIL -> PIL (same mode),
    ``(C, H, W)`` uint8 tensor -> uint8, float tensor -> float in [0, 1], ``tv_tensors.Image``
    -> ``tv_tensors.Image``; other entries pass through. The draw uses torch's global RNG,
    like every v2 transform. Datasets such as ImageFolder call ``transform(img)`` without the
    label: wrap them with :func:`ganaug.with_labels`.

    ``forward`` finds the label, then :meth:`make_params` draws ``{"apply", "fake"}`` (the coin
    flip, and the synthetic image of the class when it replaces) and :meth:`transform` applies
    them to each image leaf, deterministically.

    Args:
        generator_or_path: a :class:`ganaug.Generator` or a model file path (loaded lazily
            in each DataLoader worker).
        p: replacement probability in [0, 1].
        classes: only replace samples of these classes (names or indices), e.g. rare ones.
        seed: base seed of the :class:`SampleBank`.
        bank_size: images generated per refill and class.
        truncation: in (0, 1], see :meth:`ganaug.Generator.noise`.
        reuse: times each generated image is served (see :class:`SampleBank`); raise it
            when the generator is the DataLoader's bottleneck.
        labels_getter: ``sample -> label`` (default :func:`default_labels_getter`).

    Raises:
        GanaugConfigError: bad ``p``/``bank_size``/``truncation``, or an unknown class in
            ``classes``.
        GanaugDataError: (when called) the sample has no label, or a label the generator lacks.
    """

    def __init__(self, generator_or_path: Generator | str | os.PathLike | GeneratorSource,
                 p: float = 0.5, *, classes=None, seed: int | None = None, bank_size: int = 64,
                 truncation: float = 1.0, reuse: int = 1,
                 labels_getter: Callable[[Any], Any] = default_labels_getter) -> None:
        super().__init__()
        self.p = check_probability("p", p)
        self.bank = SampleBank(generator_or_path, bank_size=bank_size, seed=seed,
                               truncation=truncation, reuse=reuse)
        self.labels_getter = labels_getter
        self.classes = None
        if classes is not None:
            self.classes = frozenset(self.bank.source.class_index(c) for c in classes)

    def forward(self, *inputs: Any) -> Any:
        sample = inputs if len(inputs) > 1 else inputs[0]
        label = self.labels_getter(sample)
        if label is None:
            raise GanaugDataError(
                f"GANAugment needs the label of each sample, got {_describe(sample)} without "
                "one. Call it as t(image, label) or t({'image': ..., 'label': ...}); datasets "
                "like ImageFolder or CIFAR10 call transform(image) alone, so wrap them: "
                "ganaug.with_labels(dataset, transform)."
            )
        cls = sample_class(label, self.bank.classes, where="GANAugment")
        flat, spec = tree_flatten(sample)
        targets = _image_leaves(flat, label)
        params = self.make_params([flat[i] for i in sorted(targets)], cls=cls)
        if not params["apply"]:
            return sample
        out = [self.transform(leaf, params) if i in targets else leaf
               for i, leaf in enumerate(flat)]
        return tree_unflatten(out, spec)

    def make_params(self, flat_inputs: list[Any], cls: int | None = None) -> dict[str, Any]:
        """Draw ``{"apply": bool, "fake": (C, H, W) uint8 or None}`` for one sample.

        The coin flip is drawn on every call, whatever the class, so torch's RNG stream does
        not depend on the labels. ``apply`` is true only when the flip says so, ``cls`` is one
        of ``classes`` and there is an image to replace (``flat_inputs`` is not empty); then
        ``fake`` is the next image of class ``cls`` from the bank.
        """
        apply = bool(torch.rand(()) < self.p)
        apply = apply and cls is not None and bool(flat_inputs) and (
            self.classes is None or cls in self.classes)
        return {"apply": apply, "fake": self.bank.draw(cls) if apply else None}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        """``inpt``, or ``params["fake"]`` converted to its type, size and channels."""
        return match_image(params["fake"], inpt) if params["apply"] else inpt

    def extra_repr(self) -> str:
        return f"p={self.p}, bank_size={self.bank.bank_size}, classes={self.classes}"


def _describe(sample: Any) -> str:
    if isinstance(sample, PIL.Image.Image):
        return f"a PIL image ({sample.mode} {sample.width}x{sample.height})"
    if isinstance(sample, torch.Tensor):
        return f"a tensor of shape {tuple(sample.shape)}"
    return f"a {type(sample).__name__}"


def _image_leaves(flat: list[Any], label: Any) -> set[int]:
    """Indices of the image leaves: every PIL/tv_tensors.Image, else the first pure tensor."""
    typed = {i for i, x in enumerate(flat)
             if x is not label and isinstance(x, (PIL.Image.Image, tv_tensors.Image))}
    if typed:
        return typed
    for i, x in enumerate(flat):
        if x is label:
            continue
        if (isinstance(x, torch.Tensor) and not isinstance(x, tv_tensors.TVTensor)
                and x.ndim >= 2) or (isinstance(x, np.ndarray) and x.ndim in (2, 3)):
            return {i}
    return set()


# -- with_labels -----------------------------------------------------------------------------
def _takes_label(transform: Callable) -> bool:
    """True when ``transform`` accepts ``(image, label)``: two positional args or ``*args``."""
    try:
        params = inspect.signature(transform).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return any(p.kind == p.VAR_POSITIONAL for p in params) or len(positional) >= 2


def apply_transform(transform: Callable | None, img: Any, label: Any) -> tuple[Any, Any]:
    """Apply ``transform`` to a sample: ``transform(img, label)`` when it takes a label (v2
    transforms, ``v2.Compose``, two-argument callables), else ``transform(img)``."""
    if transform is None:
        return img, label
    if _takes_label(transform):
        out = transform(img, label)
        if isinstance(out, (tuple, list)) and len(out) == 2:
            return out[0], out[1]
        return out, label
    return transform(img), label


class LabeledTransformDataset(Dataset):
    """A dataset wrapper that calls ``transform(image, label)`` (see :func:`with_labels`)."""

    def __init__(self, dataset: Dataset, transform: Callable | None) -> None:
        self.dataset = dataset
        self.transform = transform

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        img, label = self.dataset[index][:2]
        return apply_transform(self.transform, img, label)

    @property
    def classes(self) -> list[str]:
        return self.dataset.classes

    @property
    def class_to_idx(self) -> dict[str, int]:
        return self.dataset.class_to_idx

    @property
    def targets(self) -> list[int]:
        return self.dataset.targets

    def __repr__(self) -> str:
        return f"with_labels({self.dataset!r}, {self.transform!r})"


def with_labels(dataset: Dataset, transform: Callable | None) -> LabeledTransformDataset:
    """Wrap an ``(image, label)`` dataset so ``transform`` receives the label too.

    torchvision's ImageFolder/CIFAR10 call ``transform(image)`` alone, so a label-aware
    transform such as :class:`ganaug.GANAugment` cannot reach the label. The wrapper reads
    ``dataset[i] -> (image, label)`` and returns ``transform(image, label)``. A transform that
    takes one argument (e.g. a classic ``transforms.Compose``, as timm's ``create_loader``
    assigns to ``.transform``) gets the image only. ``transform`` is a settable attribute;
    ``classes``, ``class_to_idx`` and ``targets`` come from ``dataset``; ``len`` is the same.

    Args:
        dataset: a map-style dataset returning ``(image, int label)``; give it no
            ``transform`` of its own (the wrapper's runs after it).
        transform: e.g. ``v2.Compose([ganaug.GANAugment(gen), v2.RandomCrop(32, 4), ...])``.
    """
    return LabeledTransformDataset(dataset, transform)

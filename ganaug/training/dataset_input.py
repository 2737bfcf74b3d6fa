"""Train on the user's own torch ``Dataset``: read it once into :class:`LabeledImages`.

Accepted: any map-style dataset whose items are ``(image, label)`` with a PIL image, a
``(C, H, W)`` tensor (uint8, or float in [0, 1]) or an ``(H, W[, C])`` uint8 array, and an int
label, that tells its class names: ``class_to_idx`` (torchvision ImageFolder, CIFAR, ...),
timm's ``reader.class_to_idx`` or ``classes``, or those of the dataset a ``Subset`` wraps or of
the parts of a ``ConcatDataset`` (one class list for all parts).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ganaug._checks import label_transform_owner
from ganaug._classnames import dataset_class_to_idx
from ganaug.data import LabeledImages
from ganaug.errors import GanaugDataError


def dataset_classes(dataset: Any) -> list[str]:
    """The class names of ``dataset`` (index ``k`` is label ``k``).

    Raises:
        GanaugDataError: the dataset tells no class names, a ``ConcatDataset``'s parts tell
            other ones, or its labels pass through a
            ``target_transform`` (set on it or on the dataset a ``Subset`` wraps): its names
            describe the labels before it, so the model file would name the wrong classes.
    """
    owner = label_transform_owner(dataset)
    if owner is not None:
        raise GanaugDataError(
            f"{type(dataset).__name__} passes its labels through the target_transform of "
            f"{owner}, and its classes/class_to_idx names the labels before it: the model file "
            "would record the wrong class for each label. Remove the target_transform (set "
            "target_transform = None), or give a dataset whose classes name the labels it "
            "returns.")
    mapping = dataset_class_to_idx(dataset)
    if mapping:
        by_index = sorted(mapping.items(), key=lambda kv: kv[1])
        if [i for _, i in by_index] != list(range(len(by_index))):
            raise GanaugDataError(
                f"{type(dataset).__name__}'s class_to_idx does not number its classes 0..K-1 "
                f"({dict(by_index[:5])}...); set dataset.classes to the names in label order.")
        return [name for name, _ in by_index]
    raise GanaugDataError(
        f"{type(dataset).__name__} does not tell its class names (no classes, class_to_idx or "
        "reader.class_to_idx, also not on the dataset a Subset wraps). Set dataset.classes = "
        "[name of label 0, name of label 1, ...] before training, so the model file records "
        "which class each label is.")


def _to_uint8(image: Any, index: int) -> torch.Tensor:
    """One image as ``(C, H, W) uint8`` with C in {1, 3}."""
    from PIL import Image

    if isinstance(image, Image.Image):
        image = image.convert("L" if image.mode in ("L", "I", "I;16", "F", "1") else "RGB")
        image = torch.from_numpy(np.array(image))
        image = image[None] if image.ndim == 2 else image.permute(2, 0, 1)
    elif isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim not in (2, 3):
            raise GanaugDataError(
                f"item {index}: a numpy image must be (H, W) or (H, W, C) uint8, got "
                f"{image.shape} {image.dtype}.")
        image = torch.from_numpy(image.copy())
        image = image[None] if image.ndim == 2 else image.permute(2, 0, 1)
    if not isinstance(image, torch.Tensor):
        raise GanaugDataError(
            f"item {index}: the image is a {type(image).__name__}; ganaug reads PIL images, "
            "tensors and numpy arrays. Drop the dataset's transform, or end it with ToTensor.")
    if image.ndim != 3 or image.shape[0] not in (1, 3):
        raise GanaugDataError(f"item {index}: an image tensor must be (C, H, W) with C 1 or 3, "
                              f"got {tuple(image.shape)}.")
    if image.is_floating_point():
        lo, hi = float(image.min()), float(image.max())
        if not (np.isfinite(lo) and np.isfinite(hi) and lo >= 0.0 and hi <= 1.0):
            raise GanaugDataError(
                f"item {index}: a float image must be in [0, 1], got values in [{lo:.3g}, "
                f"{hi:.3g}] (normalised, or NaN). Remove Normalize from the dataset's transform.")
        image = (image * 255).round_()
    elif image.dtype != torch.uint8:
        raise GanaugDataError(f"item {index}: image dtype {image.dtype}; use uint8 or float.")
    return image.to(torch.uint8)


def images_from_dataset(dataset: Any, *, size: int | None = None,
                        channels: int | None = None) -> LabeledImages:
    """Read every item of ``dataset`` into memory, resized to ``size`` x ``size``.

    Args:
        dataset: a map-style dataset of ``(image, label)`` items (see the module docstring).
        size: the side to resize to (default: the first image's, when it is square).
        channels: 1 or 3 (default: the first image's).

    Raises:
        GanaugDataError: no ``__len__``/``__getitem__``, an empty dataset, items without a
            label, labels outside the classes, no class names, or images ganaug cannot read.
    """
    from torchvision.transforms.v2.functional import resize

    if not (hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")):
        raise GanaugDataError(
            f"data= must be a ganaug LabeledImages or a map-style torch Dataset (with __len__ "
            f"and __getitem__), got {type(dataset).__name__}.")
    classes = dataset_classes(dataset)
    if len(dataset) == 0:
        raise GanaugDataError(f"The {type(dataset).__name__} passed as data= is empty.")
    images, labels = [], []
    for i in range(len(dataset)):
        item = dataset[i]
        if not isinstance(item, (tuple, list)) or len(item) < 2:
            raise GanaugDataError(
                f"item {i} of {type(dataset).__name__} is a {type(item).__name__}, not an "
                "(image, label) pair; a GAN of classes needs the labels.")
        image, label = _to_uint8(item[0], i), item[1]
        label = int(label.item() if isinstance(label, torch.Tensor) else label)
        if not 0 <= label < len(classes):
            raise GanaugDataError(f"item {i} has label {label}, outside the dataset's "
                                  f"{len(classes)} classes.")
        if size is None:
            if image.shape[1] != image.shape[2]:
                raise GanaugDataError(
                    f"item {i} is {image.shape[2]}x{image.shape[1]}, not square; set image_size "
                    "in the TrainConfig to resize every image.")
            size = int(image.shape[1])
        channels = channels or int(image.shape[0])
        if image.shape[0] != channels:
            image = image.expand(3, -1, -1) if channels == 3 else (
                image.float().mul(torch.tensor([0.299, 0.587, 0.114])[:, None, None])
                .sum(0, keepdim=True).round().to(torch.uint8))
        if tuple(image.shape[1:]) != (size, size):
            image = resize(image, [size, size], antialias=True)
        images.append(image)
        labels.append(label)
    return LabeledImages(torch.stack(images), torch.tensor(labels, dtype=torch.int64), classes,
                         f"{type(dataset).__name__} ({len(labels):,} images)")


__all__ = ["dataset_classes", "images_from_dataset"]

"""The batches a classifier trains on: seeded shuffled epochs or class-balanced draws, from
in-memory tensors or a Dataset (:func:`classifier_batches`), and the ``collate_fn`` that makes
uint8 batches of ``(PIL or tensor, label)`` items (:func:`collate_images`).
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, RandomSampler
from torchvision.transforms.v2.functional import pil_to_tensor

from ganaug._imaging import check_batch_memory
from ganaug.augment.counts import ClassBalancedSampler, class_balanced_weights
from ganaug.errors import GanaugDataError

__all__ = ["LoaderBatches", "TensorBatches", "as_tensors", "classifier_batches",
           "collate_images"]


def as_tensors(train_data) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(images uint8, labels int64)`` for LabeledImages or a tuple; None for a Dataset."""
    if hasattr(train_data, "images") and hasattr(train_data, "labels"):
        return train_data.images, train_data.labels
    if isinstance(train_data, (tuple, list)) and len(train_data) == 2 and all(
            isinstance(t, torch.Tensor) for t in train_data):
        images, labels = train_data
        if images.ndim != 4 or labels.ndim != 1 or len(images) != len(labels):
            raise GanaugDataError(
                f"train_data tensors must be images (N, C, H, W) and labels (N,); got "
                f"{tuple(images.shape)} and {tuple(labels.shape)}.")
        return images, labels.long()
    if isinstance(train_data, torch.utils.data.Dataset):
        return None
    raise GanaugDataError(
        f"train_data must be a LabeledImages, an (images, labels) tuple of tensors or a torch "
        f"Dataset of (image, label); got {type(train_data).__name__}.")


class TensorBatches:
    """Seeded batches of in-memory tensors: shuffled epochs, or class-balanced draws."""

    def __init__(self, images, labels, batch_size, sampler, generator):
        if len(labels) == 0:
            raise GanaugDataError("train_data is empty; a classifier needs at least one image.")
        check_batch_memory(batch_size, images[0].numel())  # before the queue grows to it
        self.images, self.labels = images, labels
        self.batch_size, self.sampler, self.gen = batch_size, sampler, generator
        self.weights = class_balanced_weights(labels)
        self.queue = torch.empty(0, dtype=torch.int64)
        self.last_idx = self.queue

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.sampler == "balanced":
            idx = torch.multinomial(self.weights, self.batch_size, replacement=True,
                                    generator=self.gen)
        else:
            n, short = len(self.labels), self.batch_size - len(self.queue)
            epochs = [torch.randperm(n, generator=self.gen) for _ in range(-(-short // n))]
            self.queue = torch.cat([self.queue, *epochs])  # at once: one by one was quadratic
            idx, self.queue = self.queue[:self.batch_size], self.queue[self.batch_size:]
        self.last_idx = idx
        return self.images[idx], self.labels[idx]


def classifier_batches(train_data, num_classes: int, batch_size: int, sampler: str, gen,
             num_workers: int):
    """``(batches, labels or None)`` of ``train_data``: in-memory tensors or a Dataset."""
    tensors = as_tensors(train_data)
    if tensors is None:
        return LoaderBatches(train_data, batch_size, sampler, gen, num_workers), None
    labels = tensors[1]
    if labels.numel() and int(labels.max()) >= num_classes:
        raise GanaugDataError(
            f"train_data has label {int(labels.max())} but the classifier has {num_classes} "
            f"classes (labels 0..{num_classes - 1}).")
    return TensorBatches(tensors[0], labels, batch_size, sampler, gen), labels


def collate_images(batch) -> tuple[torch.Tensor, torch.Tensor]:
    """A DataLoader ``collate_fn``: ``(PIL or tensor, label)`` items -> uint8 ``(N, C, H, W)``
    images (float tensors in [0, 1] are scaled) and their labels."""
    images, labels = [], []
    for img, label in batch:
        if not isinstance(img, torch.Tensor):
            img = pil_to_tensor(img)
        elif img.is_floating_point():
            img = (img.clamp(0, 1) * 255).round().to(torch.uint8)
        images.append(img if img.ndim == 3 else img[None])
        labels.append(torch.as_tensor(label))
    return torch.stack(images), torch.stack(labels)


class LoaderBatches:
    """Batches from a Dataset of ``(PIL or tensor, label)`` through an endless DataLoader."""

    def __init__(self, dataset, batch_size, sampler, generator, num_workers):
        if sampler == "balanced":
            targets = getattr(dataset, "targets", None)
            if targets is None:
                raise GanaugDataError(
                    f"sampler='balanced' needs the labels up front, but {type(dataset).__name__} "
                    "has no .targets. Pass (images, labels) tensors or use sampler='uniform'.")
            chooser = ClassBalancedSampler(list(targets), generator=generator)
        else:
            chooser = RandomSampler(dataset, generator=generator)
        self.loader = DataLoader(dataset, batch_size=batch_size, sampler=chooser,
                                 num_workers=num_workers, collate_fn=collate_images,
                                 drop_last=False)
        self.it = iter(self.loader)

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        try:
            return next(self.it)
        except StopIteration:
            self.it = iter(self.loader)
            return next(self.it)


# -- training -------------------------------------------------------------------------------------

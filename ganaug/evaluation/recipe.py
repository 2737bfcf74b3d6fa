"""Train a classifier on a fixed step budget, and the one recipe every ganaug classifier follows.

Every arm of an experiment, the feature classifier and the CAS classifier get the same number of
optimiser steps, so a difference in accuracy is a difference in data, not in compute.
:class:`ClassifierRecipe` holds that recipe (backbone, stem, width, budget, augmentation) once.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ganaug._checks import check_float, check_int
from ganaug._devices import DeviceLike, resolve_device
from ganaug.augment.recipe import Distiller
from ganaug.errors import GanaugConfigError, GanaugDataError, GanaugTrainingError
from ganaug.evaluation.batches import classifier_batches, collate_images
from ganaug.evaluation.classifier import config_of, create_classifier, to_input
from ganaug.progress import progress_bar

__all__ = [
    "ClassifierRecipe",
    "collate_images",
    "flip_suits",
    "random_crop_flip",
    "train_classifier",
]

# Datasets whose classes change meaning under a mirror (digits, text): no horizontal flip.
_NO_FLIP_NAMES = ("mnist", "digits", "svhn", "emnist", "usps")


# -- inputs ---------------------------------------------------------------------------------------
def flip_suits(spec: str) -> bool:
    """Whether a horizontal flip keeps the class of images from dataset ``spec``.

    False for digit and character sources (mnist5k, digits, svhn, ...), True otherwise.
    """
    base = str(spec).lower().split("?")[0]
    return not any(word in base for word in _NO_FLIP_NAMES)


def random_crop_flip(images: torch.Tensor, *, pad: int, flip: bool,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Random crop with zero padding and an optional horizontal flip, for a whole batch at once.

    Args:
        images: ``(N, C, H, W)`` of any dtype, on any device.
        pad: pixels of zero padding on each side before the crop (0 turns the crop off).
        flip: mirror half of the images left-right.
        generator: CPU generator of the offsets and flips (for reproducible batches).

    Returns:
        ``(N, C, H, W)``, same dtype and device.
    """
    n, _, h, w = images.shape
    out = images
    if pad > 0:
        padded = F.pad(images, (pad, pad, pad, pad))
        oy = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(images.device)
        ox = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(images.device)
        rows = (oy[:, None] + torch.arange(h, device=images.device))[:, None, :, None]
        cols = (ox[:, None] + torch.arange(w, device=images.device))[:, None, None, :]
        batch = torch.arange(n, device=images.device)[:, None, None, None]
        chans = torch.arange(images.shape[1], device=images.device)[None, :, None, None]
        out = padded[batch, chans, rows, cols]
    if flip:
        mirror = (torch.rand(n, generator=generator) < 0.5).to(images.device)
        out = torch.where(mirror[:, None, None, None], out.flip(-1), out)
    return out


def _standard_pad(image_size: int) -> int:
    # 4 px at 32 px (the CIFAR recipe), scaled with the image.
    return max(1, round(image_size * 4 / 32))


# -- batches --------------------------------------------------------------------------------------
def _class_weight_tensor(class_weights, labels: torch.Tensor | None,
                         num_classes: int) -> torch.Tensor | None:
    if class_weights is None:
        return None
    if isinstance(class_weights, str):
        if class_weights != "balanced":
            raise GanaugConfigError(f"class_weights must be None, 'balanced' or one weight per "
                                    f"class; got {class_weights!r}.")
        if labels is None:
            raise GanaugConfigError("class_weights='balanced' needs in-memory (images, labels); "
                                    "pass the weights yourself for a Dataset.")
        counts = torch.bincount(labels, minlength=num_classes).float().clamp(min=1)
        # n / (K * n_k): sklearn's "balanced" weights, mean 1 over the samples.
        return len(labels) / (num_classes * counts)
    weights = torch.as_tensor(class_weights, dtype=torch.float32)
    if weights.shape != (num_classes,):
        raise GanaugConfigError(f"class_weights needs {num_classes} values (one per class); got "
                                f"shape {tuple(weights.shape)}.")
    return weights


def _check_synthetic(synthetic, synthetic_weight: float, n_rows: int | None) -> torch.Tensor | None:
    """The checked ``(N,)`` bool mask of synthetic rows (None when no row is weighted)."""
    check_float("synthetic_weight", synthetic_weight, minimum=0.0, open_min=True,
                hint="Use e.g. synthetic_weight=0.1.")
    if synthetic is None:
        return None
    if n_rows is None:
        raise GanaugConfigError("synthetic= marks rows of in-memory (images, labels) tensors; "
                                "for a Dataset, use a mixer's last_synthetic_mask.")
    mask = torch.as_tensor(synthetic).bool().reshape(-1)
    if mask.shape[0] != n_rows:
        raise GanaugDataError(f"synthetic= has {mask.shape[0]} rows for {n_rows} training "
                              "images; give one bool per image (True: synthetic).")
    return mask


def _batch_loss(logits, labels, *, weights, label_smoothing, row_weights,
                distiller: Distiller | None = None) -> torch.Tensor:
    """Cross-entropy of a batch; with ``row_weights``, ``sum_i r_i CE_i / sum_i r_i``.

    Without class weights or label smoothing, a distilled batch's loss is the
    :class:`ganaug.Distiller`'s own (the recipe's one implementation).

    Class ``weights`` scale a hard-label row's loss by its class's weight (PyTorch's
    ``weight=``). A soft ``(N, K)`` target row is scaled by its expected class weight
    ``sum_c y_ic w_c``, never inside the row: ``weight=`` on probability targets moves the
    loss's minimum away from the target, towards the heavy (rare) classes.
    """
    if distiller is not None and weights is None and not label_smoothing:
        return distiller.loss(logits, labels, row_weights)
    if weights is not None and labels.ndim == 2:
        expected = labels.float() @ weights  # each row's class weight under its target
        per_row = expected * F.cross_entropy(logits, labels, label_smoothing=label_smoothing,
                                             reduction="none")
        if row_weights is None:
            return per_row.sum() / expected.sum()
    elif row_weights is None:
        return F.cross_entropy(logits, labels, weight=weights, label_smoothing=label_smoothing)
    else:
        per_row = F.cross_entropy(logits, labels, weight=weights, label_smoothing=label_smoothing,
                                  reduction="none")
    return (row_weights * per_row).sum() / row_weights.sum()


def _synthetic_rows(batches, synthetic, mixer, n: int, dev) -> torch.Tensor:
    """``(n,)`` bool: rows of this batch drawn from synthetic data or replaced by the mixer."""
    rows = torch.zeros(n, dtype=torch.bool, device=dev)
    if synthetic is not None:
        rows |= synthetic[batches.last_idx].to(dev)
    replaced = getattr(mixer, "last_synthetic_mask", None)
    if replaced is not None and replaced.shape == (n,):
        rows |= replaced.to(dev)
    return rows


def _optimizer(model: nn.Module, name: str, lr, weight_decay) -> torch.optim.Optimizer:
    """SGD (Nesterov, momentum 0.9; lr 0.05, wd 5e-4) or AdamW (lr 2e-3, wd 0.05) by default."""
    if name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=lr or 0.05, momentum=0.9, nesterov=True,
                               weight_decay=5e-4 if weight_decay is None else weight_decay)
    return torch.optim.AdamW(model.parameters(), lr=lr or 2e-3,
                             weight_decay=0.05 if weight_decay is None else weight_decay)


def _schedule(step: int, steps: int, warmup: int) -> float:
    """Linear warm-up, then cosine decay to 0 over the remaining steps (a factor of ``lr``)."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))


def _check_train_args(steps, batch_size, optimizer="sgd", sampler="uniform", augment=None,
                      label_smoothing=0.0) -> None:
    check_int("steps", steps)
    check_int("batch_size", batch_size, minimum=2, hint="Batch norm needs two images per batch.")
    if optimizer not in ("sgd", "adamw"):
        raise GanaugConfigError(f"optimizer must be 'sgd' or 'adamw', got {optimizer!r}.")
    if sampler not in ("uniform", "balanced"):
        raise GanaugConfigError(f"sampler must be 'uniform' or 'balanced' (oversampling), got "
                                f"{sampler!r}.")
    if augment not in (None, "none", "standard"):
        raise GanaugConfigError(f"augment must be None or 'standard' (random crop with padding "
                                f"+ flip where it suits), got {augment!r}.")
    if not 0.0 <= label_smoothing < 1.0:
        raise GanaugConfigError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}.")


def train_classifier(model: nn.Module, train_data, *, steps: int = 300, batch_size: int = 128,
                     lr: float | None = None, weight_decay: float | None = None,
                     optimizer: str = "sgd", augment: str | None = None, flip: bool = True,
                     mixer: Callable | None = None, class_weights=None,
                     sampler: str = "uniform", label_smoothing: float = 0.0, seed: int = 0,
                     synthetic: torch.Tensor | None = None, synthetic_weight: float = 1.0,
                     distiller: Distiller | None = None,
                     device: DeviceLike = None, amp: bool | None = None,
                     num_workers: int = 0, progress: bool = True,
                     desc: str = "classifier") -> nn.Module:
    """Train ``model`` for exactly ``steps`` optimiser steps (same budget whatever the data size).

    Each step: draw a batch (uint8), apply ``mixer``, then the augmentation, scale to [-1, 1],
    cross-entropy (optionally class-weighted / label-smoothed), one optimiser step. The learning
    rate warms up linearly over the first 5% of steps, then follows a cosine decay to 0.

    Args:
        model: from :func:`create_classifier`.
        train_data: a ``LabeledImages``, an ``(images (N, C, H, W) uint8, labels (N,) int64)``
            tuple, or a Dataset of ``(PIL image or (C, H, W) tensor, int)``.
        steps: optimiser steps.
        batch_size: images per step.
        lr: peak learning rate (default 0.05 for SGD, 2e-3 for AdamW).
        weight_decay: default 5e-4 for SGD, 0.05 for AdamW.
        optimizer: ``"sgd"`` (Nesterov momentum 0.9) or ``"adamw"``.
        augment: None, or ``"standard"``: random crop with zero padding (4 px at 32 px, scaled)
            plus a horizontal flip when ``flip``.
        flip: whether ``"standard"`` mirrors images (False for digits; see :func:`flip_suits`).
        mixer: ``mixer(images, labels) -> (images, labels)`` applied to each uint8 batch on the
            training device before the augmentation (e.g. ``ganaug.BatchMixer``); it may return
            float images in [0, 1] and soft ``(N, K)`` labels.
        class_weights: None, ``"balanced"`` (``n / (K n_k)``) or one weight per class.
        sampler: ``"uniform"`` (shuffled epochs) or ``"balanced"`` (class-balanced oversampling).
        label_smoothing: passed to the cross-entropy.
        seed: seeds the batches and the augmentation.
        synthetic: ``(N,)`` bool, True at the rows of tensor ``train_data`` that are synthetic.
            Rows a mixer replaced (its ``last_synthetic_mask``, e.g. :class:`ganaug.BatchMixer`)
            count as synthetic too.
        synthetic_weight: weight > 0 of each synthetic row's loss: the batch loss becomes
            ``sum_i w_i CE_i / sum_i w_i`` with ``w_i = synthetic_weight`` on synthetic rows and 1
            on real ones (the same as :func:`ganaug.augment.weighted_loss`; class weights multiply each
            ``CE_i``). 1 (default) is the plain loss.
        distiller: a :class:`ganaug.Distiller`: each batch's labels become its targets (the
            teacher sees the batch after ``mixer``, before the augmentation) and its loss
            weighs the rows (class weights multiply each ``CE_i``); ``synthetic_weight`` is
            then the distiller's.
        device: where to train; ``None`` or ``"auto"``: the best available (cuda, mps, cpu).
        amp: bfloat16 autocast (default: on for CUDA).
        num_workers: DataLoader workers (Dataset input only).
        progress: show progress (a tqdm bar on a terminal, one line per interval in a log).
        desc: the bar's label.

    Returns:
        ``model``, trained, in eval mode, on ``device``.

    Raises:
        GanaugConfigError: invalid options.
        GanaugDataError: unusable ``train_data``.
    """

    _check_train_args(steps, batch_size, optimizer, sampler, augment, label_smoothing)
    cfg = config_of(model)
    dev = resolve_device(device)
    amp = dev.type == "cuda" if amp is None else amp
    gen = torch.Generator().manual_seed(int(seed))
    batches, labels_all = classifier_batches(train_data, cfg["num_classes"], batch_size, sampler, gen,
                                   num_workers)
    weights = _class_weight_tensor(class_weights, labels_all, cfg["num_classes"])
    weights = weights.to(dev) if weights is not None else None
    if distiller is not None:
        synthetic_weight = distiller.synthetic_weight
    synthetic = _check_synthetic(synthetic, synthetic_weight,
                                 None if labels_all is None else len(labels_all))
    weigh_rows = synthetic_weight != 1.0

    model.to(dev).train()
    opt = _optimizer(model, optimizer, lr, weight_decay)
    warmup = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _schedule(s, steps, warmup))
    pad = _standard_pad(cfg["image_size"]) if augment == "standard" else 0
    bar = progress_bar(steps, desc=desc, disable=not progress, leave=False)
    for step in range(steps):
        images, labels = batches.next()
        images = images.to(dev, non_blocking=True)
        labels = labels.to(dev, non_blocking=True)
        if mixer is not None:
            images, labels = mixer(images, labels)
        if distiller is not None:  # before the crop/flip: the teacher sees the batch as drawn
            labels = distiller.targets(images, labels)
        if augment == "standard":
            images = random_crop_flip(images, pad=pad, flip=flip, generator=gen)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
            logits = model(to_input(model, images))
        row_weights = None
        if weigh_rows:
            rows = _synthetic_rows(batches, synthetic, mixer, len(images), images.device)
            row_weights = torch.where(rows, synthetic_weight, 1.0).to(dev)
        loss = _batch_loss(logits.float(), labels, weights=weights,
                           label_smoothing=label_smoothing, row_weights=row_weights,
                           distiller=distiller)
        if not torch.isfinite(loss):
            raise GanaugTrainingError(f"Classifier loss became {loss.item()} at step {step}; "
                                      f"lower lr (now {opt.param_groups[0]['lr']:.3g}).")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if progress and step % 10 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
        bar.update(1)
    bar.close()
    model.eval()
    return model


# -- the recipe -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ClassifierRecipe:
    """How ganaug builds and trains a classifier: one place for what every copy must share.

    The feature classifier, the CAS classifier and every arm of an experiment are
    ``recipe.train(data, like=..., seed=...)``: the same backbone, stem, width and step budget,
    so a difference in accuracy is a difference in data.

    Attributes:
        backbone: any timm model name.
        stem: see :func:`ganaug.evaluation.create_classifier`.
        model_kwargs: extra ``timm.create_model`` arguments (e.g. ``channels=`` of a ResNet).
        steps: optimiser steps, whatever the data size.
        batch_size: images per step (>= 2).
        augment: None, or ``"standard"`` (random crop + a flip where :func:`flip_suits`).
    """

    backbone: str = "resnet18"
    stem: str = "auto"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    steps: int = 300
    batch_size: int = 128
    augment: str | None = "standard"

    def __post_init__(self) -> None:
        _check_train_args(self.steps, self.batch_size, augment=self.augment)

    def build(self, like, *, seed: int) -> nn.Module:
        """An untrained classifier for images like ``like`` (its classes, channels and size)."""
        return create_classifier(self.backbone, num_classes=like.num_classes,
                                 in_chans=like.channels, image_size=like.image_size,
                                 stem=self.stem, seed=seed, **self.model_kwargs)

    def train(self, data, *, seed: int, like=None, mixer: Callable | None = None,
              class_weights=None, sampler: str = "uniform",
              synthetic: torch.Tensor | None = None, synthetic_weight: float = 1.0,
              distiller: Distiller | None = None, device: DeviceLike = None,
              progress: bool = True, desc: str = "classifier") -> nn.Module:
        """Build a classifier and train it on ``data`` with this recipe.

        Args:
            data: what :func:`train_classifier` takes.
            seed: seeds the weights, the batches and the augmentation.
            like: a ``LabeledImages`` whose classes, channels, size and spec (for the flip) the
                classifier follows; default ``data`` itself.
            mixer, class_weights, sampler, synthetic, synthetic_weight, distiller, device,
                progress, desc: as in :func:`train_classifier`.

        Returns:
            The trained model, in eval mode, on the training device.
        """
        like = data if like is None else like
        model = self.build(like, seed=seed)
        return train_classifier(model, data, steps=self.steps, batch_size=self.batch_size,
                                augment=self.augment, flip=flip_suits(like.spec), mixer=mixer,
                                class_weights=class_weights, sampler=sampler, seed=seed,
                                synthetic=synthetic, synthetic_weight=synthetic_weight,
                                distiller=distiller, device=device, progress=progress,
                                desc=desc)

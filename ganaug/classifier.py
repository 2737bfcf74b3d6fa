"""timm image classifiers for small images: build, train on a fixed step budget, evaluate, embed.

Used by :mod:`ganaug.metrics` (feature extractor, CAS) and :mod:`ganaug.experiment` (the arms).
Every arm of an experiment gets the same number of optimiser steps, so a difference in accuracy is
a difference in data, not in compute. Small inputs get a CIFAR-style ResNet stem (a 3x3 stride-1
conv instead of the 7x7/2 conv + max-pool, He et al. 2016, https://arxiv.org/abs/1512.03385 §4.2),
because timm's ImageNet stem shrinks a 32x32 image to 1x1 before the last stage.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ganaug._files import atomic_path
from ganaug.errors import GanaugConfigError, GanaugDataError, GanaugModelError, did_you_mean

__all__ = [
    "STEMS",
    "create_classifier",
    "evaluate_classifier",
    "extract_features",
    "flip_suits",
    "load_classifier",
    "predict_logits",
    "random_crop_flip",
    "resolve_device",
    "save_classifier",
    "train_classifier",
]

# "cifar-3x3": 3x3 stride-1 conv, no max-pool (the CIFAR ResNet recipe, best accuracy);
# "cifar-3x3-pool": 3x3 stride-1 conv, max-pool kept (4x fewer FLOPs, for CPUs);
# "timm": the model as timm builds it.
STEMS = ("auto", "cifar-3x3", "cifar-3x3-pool", "timm")
# Datasets whose classes change meaning under a mirror (digits, text): no horizontal flip.
_NO_FLIP_NAMES = ("mnist", "digits", "svhn", "emnist", "usps")
_METADATA_KEY = "ganaug_classifier"


# -- building -----------------------------------------------------------------------------------
def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` as a :class:`torch.device`; ``None`` picks cuda, then mps, then cpu."""
    if device is not None:
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _is_resnet_like(model: nn.Module) -> bool:
    return all(hasattr(model, a) for a in ("conv1", "bn1", "maxpool"))


def _check_name(name: str) -> None:
    import timm

    if not timm.is_model(name):
        raise GanaugConfigError(
            f"Unknown timm model '{name}'. Use any name from timm.list_models(), e.g. resnet18, "
            "resnet10t, resnet34, efficientnet_b0, vit_tiny_patch16_224."
            + did_you_mean(name, timm.list_models())
        )


def create_classifier(name: str = "resnet18", *, num_classes: int, in_chans: int,
                      image_size: int, stem: str = "auto", seed: int | None = None,
                      **model_kwargs: Any) -> nn.Module:
    """Build an untrained timm classifier suited to ``image_size`` inputs (no download).

    Args:
        name: any timm model name.
        num_classes: outputs of the head.
        in_chans: input channels, 1 or 3.
        image_size: side of the square inputs, in pixels.
        stem: ``"auto"`` (``"cifar-3x3"`` for ResNet-family models when ``image_size <= 64``,
            else ``"timm"``), ``"cifar-3x3"``, ``"cifar-3x3-pool"`` or ``"timm"``.
        seed: seed of the weight initialisation (the global RNG is left untouched).
        **model_kwargs: passed on to ``timm.create_model`` (e.g. ``channels=`` of a ResNet).

    Returns:
        The model. ``model.ganaug_stem`` records the stem used and ``model.ganaug_config`` every
        argument, so :func:`load_classifier` can rebuild it.

    Raises:
        GanaugConfigError: unknown model name or stem, a stem swap on a non-ResNet model, or
            invalid sizes.
    """
    import timm

    _check_name(name)
    if stem not in STEMS:
        raise GanaugConfigError(f"Unknown stem '{stem}'. Use one of: {', '.join(STEMS)}."
                                + did_you_mean(stem, STEMS))
    for what, value in (("num_classes", num_classes), ("image_size", image_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise GanaugConfigError(f"{what} must be a positive integer; got {value!r}.")
    if in_chans not in (1, 3):
        raise GanaugConfigError(f"in_chans must be 1 or 3; got {in_chans!r}.")
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(int(seed))
        kwargs = dict(pretrained=False, num_classes=num_classes, in_chans=in_chans, **model_kwargs)
        try:
            # ViTs and other fixed-size models need to know the input size.
            model = timm.create_model(name, img_size=image_size, **kwargs)
        except TypeError:
            model = timm.create_model(name, **kwargs)
        resnet = _is_resnet_like(model)
        chosen = stem
        if stem == "auto":
            chosen = "cifar-3x3" if resnet and image_size <= 64 else "timm"
        if chosen != "timm":
            if not resnet:
                raise GanaugConfigError(
                    f"stem='{chosen}' replaces a ResNet stem, but '{name}' has none (no conv1/"
                    "bn1/maxpool). Use stem='timm' or 'auto' for this model."
                )
            model.conv1 = nn.Conv2d(in_chans, model.bn1.num_features, 3, 1, 1, bias=False)
            if chosen == "cifar-3x3":
                model.maxpool = nn.Identity()
    model.ganaug_stem = chosen
    model.ganaug_config = {"name": name, "num_classes": num_classes, "in_chans": in_chans,
                           "image_size": image_size, "stem": chosen,
                           "model_kwargs": model_kwargs}
    return model


def _config_of(model: nn.Module) -> dict[str, Any]:
    cfg = getattr(model, "ganaug_config", None)
    if cfg is None:
        raise GanaugConfigError(
            f"{type(model).__name__} was not built by ganaug.classifier.create_classifier, so its "
            "input size and channels are unknown. Build it with create_classifier(...)."
        )
    return cfg


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


def _to_input(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """uint8 ``[0, 255]`` or float ``[0, 1]`` images -> the model's float input in ``[-1, 1]``."""
    cfg = _config_of(model)
    if images.ndim != 4:
        raise GanaugDataError(f"images must be (N, C, H, W); got shape {tuple(images.shape)}.")
    x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
    c = x.shape[1]
    if c != cfg["in_chans"]:
        if c == 1 and cfg["in_chans"] == 3:
            x = x.expand(-1, 3, -1, -1)
        elif c == 3 and cfg["in_chans"] == 1:
            x = (0.299 * x[:, :1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])
        else:
            raise GanaugDataError(f"images have {c} channels; the classifier takes "
                                  f"{cfg['in_chans']}. Pass 1- or 3-channel images.")
    size = cfg["image_size"]
    if tuple(x.shape[-2:]) != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True,
                          align_corners=False)
    return x.sub(0.5).div(0.5)


# -- batches --------------------------------------------------------------------------------------
def _as_tensors(train_data) -> tuple[torch.Tensor, torch.Tensor] | None:
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


class _TensorBatches:
    """Seeded batches of in-memory tensors: shuffled epochs, or class-balanced draws."""

    def __init__(self, images, labels, batch_size, sampler, generator):
        if len(labels) == 0:
            raise GanaugDataError("train_data is empty; a classifier needs at least one image.")
        self.images, self.labels = images, labels
        self.batch_size, self.sampler, self.gen = batch_size, sampler, generator
        counts = torch.bincount(labels).float()
        self.weights = (1.0 / counts.clamp(min=1))[labels]
        self.queue = torch.empty(0, dtype=torch.int64)

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.sampler == "balanced":
            idx = torch.multinomial(self.weights, self.batch_size, replacement=True,
                                    generator=self.gen)
        else:
            while len(self.queue) < self.batch_size:
                self.queue = torch.cat([self.queue, torch.randperm(len(self.labels),
                                                                   generator=self.gen)])
            idx, self.queue = self.queue[:self.batch_size], self.queue[self.batch_size:]
        return self.images[idx], self.labels[idx]


def _collate(batch):
    from torchvision.transforms.v2.functional import pil_to_tensor

    images, labels = [], []
    for img, label in batch:
        if not isinstance(img, torch.Tensor):
            img = pil_to_tensor(img)
        elif img.is_floating_point():
            img = (img.clamp(0, 1) * 255).round().to(torch.uint8)
        images.append(img if img.ndim == 3 else img[None])
        labels.append(torch.as_tensor(label))
    return torch.stack(images), torch.stack(labels)


class _LoaderBatches:
    """Batches from a Dataset of ``(PIL or tensor, label)`` through an endless DataLoader."""

    def __init__(self, dataset, batch_size, sampler, generator, num_workers):
        from torch.utils.data import DataLoader, RandomSampler, WeightedRandomSampler

        if sampler == "balanced":
            targets = getattr(dataset, "targets", None)
            if targets is None:
                raise GanaugDataError(
                    f"sampler='balanced' needs the labels up front, but {type(dataset).__name__} "
                    "has no .targets. Pass (images, labels) tensors or use sampler='uniform'.")
            labels = torch.as_tensor(list(targets), dtype=torch.int64)
            weights = (1.0 / torch.bincount(labels).float().clamp(min=1))[labels]
            chooser = WeightedRandomSampler(weights, len(labels), generator=generator)
        else:
            chooser = RandomSampler(dataset, generator=generator)
        self.loader = DataLoader(dataset, batch_size=batch_size, sampler=chooser,
                                 num_workers=num_workers, collate_fn=_collate, drop_last=False)
        self.it = iter(self.loader)

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        try:
            return next(self.it)
        except StopIteration:
            self.it = iter(self.loader)
            return next(self.it)


# -- training -------------------------------------------------------------------------------------
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


def _schedule(step: int, steps: int, warmup: int) -> float:
    """Linear warm-up, then cosine decay to 0 over the remaining steps (a factor of ``lr``)."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))


def _check_train_args(steps, batch_size, optimizer, sampler, augment, label_smoothing) -> None:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise GanaugConfigError(f"steps must be a positive integer; got {steps!r}.")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 2:
        raise GanaugConfigError(f"batch_size must be an integer >= 2 (batch norm needs two "
                                f"images); got {batch_size!r}.")
    if optimizer not in ("sgd", "adamw"):
        raise GanaugConfigError(f"optimizer must be 'sgd' or 'adamw'; got {optimizer!r}.")
    if sampler not in ("uniform", "balanced"):
        raise GanaugConfigError(f"sampler must be 'uniform' or 'balanced' (oversampling); got "
                                f"{sampler!r}.")
    if augment not in (None, "none", "standard"):
        raise GanaugConfigError(f"augment must be None or 'standard' (random crop with padding "
                                f"+ flip where it suits); got {augment!r}.")
    if not 0.0 <= label_smoothing < 1.0:
        raise GanaugConfigError(f"label_smoothing must be in [0, 1); got {label_smoothing!r}.")


def train_classifier(model: nn.Module, train_data, *, steps: int = 300, batch_size: int = 128,
                     lr: float | None = None, weight_decay: float | None = None,
                     optimizer: str = "sgd", augment: str | None = None, flip: bool = True,
                     mixer: Callable | None = None, class_weights=None,
                     sampler: str = "uniform", label_smoothing: float = 0.0, seed: int = 0,
                     device: str | torch.device | None = None, amp: bool | None = None,
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
        device: default cuda, mps, then cpu.
        amp: bfloat16 autocast (default: on for CUDA).
        num_workers: DataLoader workers (Dataset input only).
        progress: show a tqdm bar.
        desc: the bar's label.

    Returns:
        ``model``, trained, in eval mode, on ``device``.

    Raises:
        GanaugConfigError: invalid options.
        GanaugDataError: unusable ``train_data``.
    """
    from tqdm.auto import tqdm

    _check_train_args(steps, batch_size, optimizer, sampler, augment, label_smoothing)
    cfg = _config_of(model)
    dev = resolve_device(device)
    amp = dev.type == "cuda" if amp is None else amp
    gen = torch.Generator().manual_seed(int(seed))
    tensors = _as_tensors(train_data)
    if tensors is not None:
        labels_all = tensors[1]
        if labels_all.numel() and int(labels_all.max()) >= cfg["num_classes"]:
            raise GanaugDataError(
                f"train_data has label {int(labels_all.max())} but the classifier has "
                f"{cfg['num_classes']} classes (labels 0..{cfg['num_classes'] - 1}).")
        batches = _TensorBatches(tensors[0], labels_all, batch_size, sampler, gen)
    else:
        labels_all = None
        batches = _LoaderBatches(train_data, batch_size, sampler, gen, num_workers)
    weights = _class_weight_tensor(class_weights, labels_all, cfg["num_classes"])
    weights = weights.to(dev) if weights is not None else None

    model.to(dev).train()
    if optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=lr or 0.05, momentum=0.9, nesterov=True,
                              weight_decay=5e-4 if weight_decay is None else weight_decay)
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=lr or 2e-3,
                                weight_decay=0.05 if weight_decay is None else weight_decay)
    warmup = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _schedule(s, steps, warmup))
    pad = _standard_pad(cfg["image_size"]) if augment == "standard" else 0
    bar = tqdm(range(steps), desc=desc, disable=not progress, leave=False)
    for step in bar:
        images, labels = batches.next()
        images = images.to(dev, non_blocking=True)
        labels = labels.to(dev, non_blocking=True)
        if mixer is not None:
            images, labels = mixer(images, labels)
        if augment == "standard":
            images = random_crop_flip(images, pad=pad, flip=flip, generator=gen)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
            logits = model(_to_input(model, images))
        loss = F.cross_entropy(logits.float(), labels, weight=weights,
                               label_smoothing=label_smoothing)
        if not torch.isfinite(loss):
            from ganaug.errors import GanaugTrainingError

            raise GanaugTrainingError(f"Classifier loss became {loss.item()} at step {step}; "
                                      f"lower lr (now {opt.param_groups[0]['lr']:.3g}).")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if progress and step % 10 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
    model.eval()
    return model


# -- inference ------------------------------------------------------------------------------------
def predict_logits(model: nn.Module, images: torch.Tensor, *, batch_size: int = 512,
                   device: str | torch.device | None = None) -> torch.Tensor:
    """``(N, K)`` float32 logits on the CPU for ``(N, C, H, W)`` uint8 (or [0, 1] float) images."""
    dev = resolve_device(device) if device is not None else next(model.parameters()).device
    model.to(dev).eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            x = images[start:start + batch_size].to(dev)
            out.append(model(_to_input(model, x)).float().cpu())
    k = _config_of(model)["num_classes"]
    return torch.cat(out) if out else torch.empty(0, k)


def evaluate_classifier(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *,
                        batch_size: int = 512,
                        device: str | torch.device | None = None) -> dict[str, Any]:
    """Accuracy figures of ``model`` on a labelled image set.

    Args:
        images: ``(N, C, H, W) uint8``.
        labels: ``(N,) int64`` in ``[0, K)``.

    Returns:
        ``{"accuracy", "balanced_accuracy" (mean per-class recall), "per_class_accuracy"
        (list of K floats, NaN for a class absent from labels), "confusion" (K x K list,
        rows true, columns predicted), "n"}``.
    """
    from sklearn.metrics import balanced_accuracy_score, confusion_matrix

    if len(images) != len(labels) or len(labels) == 0:
        raise GanaugDataError(f"evaluate_classifier needs as many labels as images (> 0); got "
                              f"{len(images)} images and {len(labels)} labels.")
    k = _config_of(model)["num_classes"]
    pred = predict_logits(model, images, batch_size=batch_size, device=device).argmax(1).numpy()
    true = labels.cpu().numpy()
    conf = confusion_matrix(true, pred, labels=list(range(k)))
    support = conf.sum(1)
    per_class = [float(conf[i, i] / support[i]) if support[i] else float("nan") for i in range(k)]
    return {
        "accuracy": float((pred == true).mean()),
        "balanced_accuracy": float(balanced_accuracy_score(true, pred)),
        "per_class_accuracy": per_class,
        "confusion": conf.tolist(),
        "n": len(true),
    }


def extract_features(model: nn.Module, images: torch.Tensor, *, batch_size: int = 512,
                     device: str | torch.device | None = None) -> torch.Tensor:
    """``(N, D)`` float32 CPU features: the globally pooled pre-logits of a timm model.

    Uses ``model.forward_head(model.forward_features(x), pre_logits=True)``.
    """
    dev = resolve_device(device) if device is not None else next(model.parameters()).device
    model.to(dev).eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            x = _to_input(model, images[start:start + batch_size].to(dev))
            feats = model.forward_head(model.forward_features(x), pre_logits=True)
            out.append(feats.flatten(1).float().cpu())
    return torch.cat(out) if out else torch.empty(0, getattr(model, "num_features", 0))


# -- files ----------------------------------------------------------------------------------------
def save_classifier(model: nn.Module, path: str | Path,
                    metadata: dict[str, Any] | None = None) -> Path:
    """Save a :func:`create_classifier` model as safetensors (weights + JSON config, no pickle)."""
    from safetensors.torch import save_model

    doc = {"config": _config_of(model), "metadata": metadata or {}}
    with atomic_path(path) as tmp:
        save_model(model.cpu(), str(tmp), metadata={_METADATA_KEY: json.dumps(doc)})
    return Path(path)


def load_classifier(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a classifier saved by :func:`save_classifier`; returns ``(model, metadata)``.

    Raises:
        GanaugModelError: the file is missing, corrupt, or not a ganaug classifier.
    """
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_model

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError) as exc:
        raise GanaugModelError(f"Cannot read classifier file {path}: {exc}. Delete it to "
                               "retrain.") from exc
    if _METADATA_KEY not in meta:
        raise GanaugModelError(f"{path} is a safetensors file but not a ganaug classifier (no "
                               f"'{_METADATA_KEY}' metadata). Delete it to retrain.")
    doc = json.loads(meta[_METADATA_KEY])
    cfg = dict(doc["config"])
    model = create_classifier(cfg.pop("name"), **cfg.pop("model_kwargs"), **cfg)
    load_model(model, str(path))
    model.eval()
    return model, doc.get("metadata", {})


def _summary(model: nn.Module) -> dict[str, Any]:
    """The JSON-able config of a classifier, for reports."""
    cfg = dict(_config_of(model))
    cfg["parameters"] = sum(p.numel() for p in model.parameters())
    return cfg


def describe_budget(steps: int, batch_size: int) -> str:
    """``"300 steps x 128 images"``: how reports state a training budget."""
    return f"{steps} steps x {batch_size} images"


def check_same_classes(what_a: str, classes_a: Sequence[str], what_b: str,
                       classes_b: Sequence[str]) -> None:
    """Raise when two class lists differ (count first, then names), naming both sides."""
    if len(classes_a) != len(classes_b):
        raise GanaugDataError(
            f"Class-count mismatch: {what_a} has {len(classes_a)} classes, {what_b} has "
            f"{len(classes_b)}. Use data with the classes the model was trained on.")
    if list(map(str, classes_a)) != list(map(str, classes_b)):
        diff = [(a, b) for a, b in zip(classes_a, classes_b) if str(a) != str(b)][:3]
        raise GanaugDataError(
            f"Class names differ between {what_a} and {what_b} (first differences: "
            f"{', '.join(f'{a!r} vs {b!r}' for a, b in diff)}). Labels would not line up; use "
            "the same dataset (same class folders, same order).")

"""timm image classifiers for small images: build, convert inputs, predict, embed, evaluate, save.

The classifiers of :mod:`ganaug.evaluation` (feature extractor, CAS, the experiment's arms) are
all built here; :mod:`ganaug.evaluation.recipe` trains them. Small inputs get a CIFAR-style
ResNet stem (a 3x3 stride-1 conv instead of the 7x7/2 conv + max-pool, He et al. 2016,
https://arxiv.org/abs/1512.03385 §4.2), because timm's ImageNet stem shrinks a 32x32 image to 1x1
before the last stage.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ganaug._checks import check_int
from ganaug._devices import DeviceLike, resolve_device
from ganaug._files import atomic_path
from ganaug._imaging import fit_images, to_float01
from ganaug.errors import (
    GanaugConfigError,
    GanaugDataError,
    GanaugError,
    GanaugModelError,
    did_you_mean,
)
from ganaug.model_document import CLASSIFIER_METADATA_KEY, file_kind

__all__ = [
    "STEMS",
    "check_same_classes",
    "check_stem",
    "check_timm_name",
    "config_of",
    "create_classifier",
    "evaluate_classifier",
    "extract_features",
    "load_classifier",
    "predict_logits",
    "run_batched",
    "save_classifier",
    "to_input",
]

# "cifar-3x3": 3x3 stride-1 conv, no max-pool (the CIFAR ResNet recipe, best accuracy);
# "cifar-3x3-pool": 3x3 stride-1 conv, max-pool kept (4x fewer FLOPs, for CPUs);
# "timm": the model as timm builds it.
STEMS = ("auto", "cifar-3x3", "cifar-3x3-pool", "timm")


# -- building -----------------------------------------------------------------------------------
def _is_resnet_like(model: nn.Module) -> bool:
    return all(hasattr(model, a) for a in ("conv1", "bn1", "maxpool"))


def check_stem(stem: str) -> None:
    """Raise a :class:`GanaugConfigError` (with a suggestion) unless ``stem`` is in STEMS."""
    if stem not in STEMS:
        raise GanaugConfigError(f"stem must be one of {', '.join(STEMS)}, got {stem!r}."
                                + did_you_mean(str(stem), STEMS))


def check_timm_name(name: str, what: str = "backbone") -> None:
    """Raise a :class:`GanaugConfigError` (with a suggestion) unless timm knows model ``name``
    (``what`` names the argument when it is not a string)."""
    import timm

    if not isinstance(name, str):
        raise GanaugConfigError(f"{what} must be a timm model name (a string), got {name!r}; "
                                "e.g. resnet18.")
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

    check_timm_name(name)
    check_stem(stem)
    num_classes = check_int("num_classes", num_classes)
    image_size = check_int("image_size", image_size)
    if in_chans not in (1, 3):
        raise GanaugConfigError(f"in_chans must be 1 or 3, got {in_chans!r}.")
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


def config_of(model: nn.Module) -> dict[str, Any]:
    """The :func:`create_classifier` arguments recorded on ``model`` (its input size, channels...).

    Raises:
        GanaugConfigError: ``model`` was not built by :func:`create_classifier`.
    """
    cfg = getattr(model, "ganaug_config", None)
    if cfg is None:
        raise GanaugConfigError(
            f"{type(model).__name__} was not built by ganaug.evaluation.create_classifier, so its "
            "input size and channels are unknown. Build it with create_classifier(...)."
        )
    return cfg


# -- inputs and inference -------------------------------------------------------------------------
def to_input(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """uint8 ``[0, 255]`` or float ``[0, 1]`` images -> the model's float input in ``[-1, 1]``.

    Images are converted to the model's channels (grey <-> RGB) and resized to its input size.
    """
    cfg = config_of(model)
    if images.ndim != 4:
        raise GanaugDataError(f"images must be (N, C, H, W); got shape {tuple(images.shape)}.")
    c = images.shape[1]
    if c not in (1, 3):
        raise GanaugDataError(f"images have {c} channels; the classifier takes "
                              f"{cfg['in_chans']}. Pass 1- or 3-channel images.")
    x = fit_images(to_float01(images), cfg["in_chans"], cfg["image_size"])
    return x.sub(0.5).div(0.5)


def run_batched(model: nn.Module, images: torch.Tensor,
                forward: Callable[[torch.Tensor], torch.Tensor], *, batch_size: int,
                device: DeviceLike = None, width: int) -> torch.Tensor:
    """``forward`` over ``images`` in batches, in eval and inference mode: ``(N, width)`` on the CPU.

    Args:
        model: put in eval mode and moved to ``device`` (``None``: left where it is).
        images: ``(N, C, H, W)``, any device; each batch is moved to the model's device.
        forward: one batch on the model's device -> ``(B, width)`` outputs.
        batch_size: images per forward pass.
        device: see :mod:`ganaug._devices`.
        width: the output width when ``images`` is empty.
    """
    dev = resolve_device(device) if device is not None else next(model.parameters()).device
    model.to(dev).eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            out.append(forward(images[start:start + batch_size].to(dev)).float().cpu())
    return torch.cat(out) if out else torch.empty(0, width)


def predict_logits(model: nn.Module, images: torch.Tensor, *, batch_size: int = 512,
                   device: DeviceLike = None) -> torch.Tensor:
    """``(N, K)`` float32 logits on the CPU for ``(N, C, H, W)`` uint8 (or [0, 1] float) images.

    ``device=None`` runs the model where it is.
    """
    return run_batched(model, images, lambda x: model(to_input(model, x)),
                       batch_size=batch_size, device=device,
                       width=config_of(model)["num_classes"])


def extract_features(model: nn.Module, images: torch.Tensor, *, batch_size: int = 512,
                     device: DeviceLike = None) -> torch.Tensor:
    """``(N, D)`` float32 CPU features: the globally pooled pre-logits of a timm model.

    Uses ``model.forward_head(model.forward_features(x), pre_logits=True)``.
    """
    def forward(x: torch.Tensor) -> torch.Tensor:
        feats = model.forward_features(to_input(model, x))
        return model.forward_head(feats, pre_logits=True).flatten(1)

    return run_batched(model, images, forward, batch_size=batch_size, device=device,
                       width=getattr(model, "num_features", 0))


def evaluate_classifier(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *,
                        batch_size: int = 512,
                        device: DeviceLike = None) -> dict[str, Any]:
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
    k = config_of(model)["num_classes"]
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


# -- files ----------------------------------------------------------------------------------------
def save_classifier(model: nn.Module, path: str | Path,
                    metadata: dict[str, Any] | None = None) -> Path:
    """Save a :func:`create_classifier` model as safetensors (weights + JSON config, no pickle)."""
    from safetensors.torch import save_model

    doc = {"config": config_of(model), "metadata": metadata or {}}
    with atomic_path(path) as tmp:
        save_model(model.cpu(), str(tmp), metadata={CLASSIFIER_METADATA_KEY: json.dumps(doc)})
    return Path(path)


def load_classifier(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a classifier saved by :func:`save_classifier`; returns ``(model, metadata)``.

    Raises:
        GanaugModelError: the file is missing, corrupt, or not a ganaug classifier.
    """
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_model

    # A file that is no ganaug classifier may be the user's own: no advice to delete it.
    what = "pass the .safetensors file written by ganaug.evaluation.save_classifier"
    path = Path(path)
    if not path.is_file():
        raise GanaugModelError(f"No classifier file at {path}; {what}." if not path.exists()
                               else f"{path} is not a file (a folder, FIFO or device); {what}.")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in list(f.keys())}
    except (SafetensorError, OSError) as exc:
        raise GanaugModelError(f"Cannot read classifier file {path}: {exc}. It is damaged or "
                               f"no safetensors file; {what}.") from exc
    if file_kind(meta) == "generator":
        raise GanaugModelError(f"{path} is a ganaug generator model file, not a classifier. "
                               f"Load it with ganaug.load; for a classifier, {what}.")
    if CLASSIFIER_METADATA_KEY not in meta:
        raise GanaugModelError(f"{path} is a safetensors file but not a ganaug classifier (no "
                               f"'{CLASSIFIER_METADATA_KEY}' metadata); {what}.")
    try:
        doc = json.loads(meta[CLASSIFIER_METADATA_KEY])
        cfg = dict(doc["config"])
        name, kwargs = cfg.pop("name"), cfg.pop("model_kwargs")
        # Measured on the meta device first: a damaged or hostile config allocates nothing.
        with torch.device("meta"):
            skeleton = create_classifier(name, **kwargs, **cfg)
        misfit = _misfit(skeleton, shapes)
        if misfit:
            raise GanaugModelError(f"The weights in classifier file {path} do not fit the "
                                   f"network its metadata describes ({misfit}). Delete it to "
                                   "retrain.")
        model = create_classifier(name, **kwargs, **cfg)
    except GanaugError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise GanaugModelError(f"The ganaug metadata of classifier file {path} is damaged "
                               f"({type(exc).__name__}: {exc}). Delete it to retrain.") from exc
    try:
        load_model(model, str(path))
    except (RuntimeError, SafetensorError) as exc:
        raise GanaugModelError(f"The weights in classifier file {path} do not fit the network "
                               f"its metadata describes ({str(exc)[:200]}). Delete it to "
                               "retrain.") from exc
    model.eval()
    metadata = doc.get("metadata") or {}
    return model, metadata if isinstance(metadata, dict) else {}


def _misfit(skeleton: nn.Module, shapes: dict[str, tuple[int, ...]]) -> str | None:
    """Why a network (on the meta device) cannot hold the weights of shapes ``shapes``: a tensor
    of another shape, or more elements in all than the file has. ``None`` when it may."""
    for key, tensor in skeleton.state_dict().items():
        if key in shapes and tuple(tensor.shape) != shapes[key]:
            return f"{key}: {tuple(tensor.shape)} in the network, {shapes[key]} in the file"
    tensors = {id(t): t for t in (*skeleton.parameters(), *skeleton.buffers())}
    wanted = sum(t.numel() for t in tensors.values())
    stored = sum(math.prod(shape) for shape in shapes.values())
    if wanted > stored:
        return f"the network has {wanted:,} numbers, the file {stored:,}"
    return None


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

"""Feature extractors for the generator metrics: the cached real-data classifier, or a timm model.

By default features come from a small timm classifier trained offline on the dataset's own
training split (cached as safetensors under ``~/.cache/ganaug/features``), so distances compare
generators of *this* dataset with each other; they are **not** comparable with published
Inception FIDs (Heusel et al. 2017, https://arxiv.org/abs/1706.08500). ``"NAME:WEIGHTS"`` (any
timm model name and a local weights file) gives Inception-style numbers.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ganaug._devices import DeviceLike, resolve_device
from ganaug._imaging import fit_images, normalize, to_float01
from ganaug.errors import GanaugConfigError, GanaugModelError
from ganaug.evaluation.classifier import (
    check_timm_name,
    extract_features,
    load_classifier,
    run_batched,
    save_classifier,
)
from ganaug.evaluation.recipe import ClassifierRecipe
from ganaug.model_document import file_kind

__all__ = [
    "DEFAULT_BACKBONE",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_CLASSIFIER_STEPS",
    "DEFAULT_MODEL_KWARGS",
    "DEFAULT_STEM",
    "FeatureExtractor",
    "cache_dir",
    "classifier_extractor",
    "evaluation_recipe",
    "read_state_dict",
    "timm_feature_extractor",
    "train_real_classifier",
]

# A 1-block-per-stage ResNet with a 3x3 stride-1 stem that keeps the max-pool: >97% on mnist5k
# in about a minute on 2 CPU cores (see docs/evaluation.md for the measurements).
DEFAULT_BACKBONE = "resnet10t"
DEFAULT_STEM = "cifar-3x3-pool"
DEFAULT_MODEL_KWARGS: dict[str, Any] = {"channels": (32, 64, 128, 256), "stem_width": 16}
DEFAULT_CLASSIFIER_STEPS = 300
DEFAULT_BATCH_SIZE = 128
NOT_INCEPTION_NOTE = ("features of a {backbone} classifier trained on this dataset's training "
                      "split: compare these distances between generators of this dataset only; "
                      "they are NOT comparable with published (Inception-v3) FIDs.")


@dataclass
class FeatureExtractor:
    """A named map from ``(N, C, H, W) uint8`` images to ``(N, D) float32`` features.

    Attributes:
        name: what produced the features, e.g. ``"resnet10t trained on mnist5k?split=train"``.
        note: how to read distances measured with it.
        fn: the map itself.
    """

    name: str
    note: str
    fn: Callable[[torch.Tensor], torch.Tensor]

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return self.fn(images)


def cache_dir(path: str | os.PathLike | None = None) -> Path:
    """Where trained feature classifiers are cached: ``path``, ``$GANAUG_CACHE_DIR`` or
    ``~/.cache/ganaug``, plus ``/features``."""
    root = path or os.environ.get("GANAUG_CACHE_DIR") or Path.home() / ".cache" / "ganaug"
    return Path(root).expanduser() / "features"


def evaluation_recipe(backbone: str = DEFAULT_BACKBONE, stem: str = DEFAULT_STEM,
                      model_kwargs: dict[str, Any] | None = None,
                      steps: int = DEFAULT_CLASSIFIER_STEPS,
                      batch_size: int = DEFAULT_BATCH_SIZE) -> ClassifierRecipe:
    """The recipe of the real (feature) classifier and the CAS classifier: standard augmentation;
    ``model_kwargs`` default to the narrow ``DEFAULT_MODEL_KWARGS`` for the default backbone only."""
    if model_kwargs is None:
        model_kwargs = DEFAULT_MODEL_KWARGS if backbone == DEFAULT_BACKBONE else {}
    return ClassifierRecipe(backbone=backbone, stem=stem, model_kwargs=dict(model_kwargs),
                            steps=steps, batch_size=batch_size, augment="standard")


def train_real_classifier(train_data, *, backbone: str = DEFAULT_BACKBONE,
                          stem: str = DEFAULT_STEM, steps: int = DEFAULT_CLASSIFIER_STEPS,
                          model_kwargs: dict[str, Any] | None = None,
                          batch_size: int = DEFAULT_BATCH_SIZE, seed: int = 0,
                          device: DeviceLike = None,
                          cache: str | os.PathLike | None | bool = None,
                          progress: bool = True):
    """The classifier trained on the real training data (feature extractor and CAS reference).

    Cached as ``<cache>/features/<data fingerprint>-<backbone>-<stem>-<kwargs hash>-<steps>x<batch>
    -s<seed>.safetensors`` (safetensors, never pickle); ``cache=False`` turns the cache off.

    Returns:
        ``(model, cache_path or None, cached: bool)``.
    """
    recipe = evaluation_recipe(backbone, stem, model_kwargs, steps, batch_size)
    path = None
    if cache is not False:
        kw_json = json.dumps(recipe.model_kwargs, sort_keys=True)
        kw_hash = hashlib.sha256(kw_json.encode()).hexdigest()[:8]
        name = (f"{train_data.fingerprint()[:20]}-{backbone}-{stem}-{kw_hash}-{steps}x"
                f"{batch_size}-s{seed}.safetensors")
        path = cache_dir(cache if cache not in (None, True) else None) / name
        if path.is_file():
            try:
                model, _ = load_classifier(path)
                return model, path, True
            except GanaugModelError:
                path.unlink()  # a broken cache entry: retrain and overwrite it
    model = recipe.train(train_data, seed=seed, device=device, progress=progress,
                         desc="real classifier")
    if path is not None:
        save_classifier(model, path, metadata={"data_spec": train_data.spec,
                                               "data_fingerprint": train_data.fingerprint()})
    return model, path, False


def timm_feature_extractor(spec: str, *, device: DeviceLike = None) -> FeatureExtractor:
    """``"NAME:WEIGHTS"``: a timm model with local weights (safetensors or a torch state dict).

    Images are resized to the model's input size, grey is repeated to RGB, and the model's own
    mean/std are applied. Features are its pooled pre-logits.

    Raises:
        GanaugConfigError: not ``NAME:PATH``, or an unknown model name.
        GanaugModelError: missing or mismatched weights.
    """
    import timm

    name, sep, weights = str(spec).partition(":")
    if not sep or not name or not weights:
        raise GanaugConfigError(
            f"features must be NAME:WEIGHTS_FILE (e.g. "
            f"features='inception_v3:./inception.safetensors'), got {spec!r}. Leave it out to "
            "train a feature classifier on your data.")
    check_timm_name(name)
    path = Path(weights).expanduser()
    state = read_state_dict(path, name)
    model = timm.create_model(name, pretrained=False)
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches are raised even with strict=False
        raise GanaugModelError(f"{path} does not fit timm '{name}': {str(exc)[:300]}. Use the "
                               "weights of exactly that model.") from exc
    if missing or unexpected:
        raise GanaugModelError(
            f"{path} does not fit timm '{name}': {len(missing)} missing keys (e.g. "
            f"{missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]}). Use the "
            "weights of exactly that model.")
    model.to(resolve_device(device)).eval()
    cfg = model.pretrained_cfg or {}
    _, h, w = cfg.get("input_size", (3, 224, 224))
    mean = cfg.get("mean", (0.485, 0.456, 0.406))
    std = cfg.get("std", (0.229, 0.224, 0.225))

    def forward(x: torch.Tensor) -> torch.Tensor:
        x = normalize(fit_images(to_float01(x), 3, (h, w)), mean, std)
        return model.forward_head(model.forward_features(x), pre_logits=True).flatten(1)

    def fn(images: torch.Tensor) -> torch.Tensor:
        return run_batched(model, images, forward, batch_size=128, width=model.num_features)

    return FeatureExtractor(name=f"{name} ({path.name})",
                            note=f"features of timm {name} with weights {path}.", fn=fn)


def read_state_dict(path: Path, name: str) -> dict[str, torch.Tensor]:
    """The tensors of a weights file for timm model ``name``: safetensors (by the ``.safetensors``
    suffix), else a torch state dict read with ``weights_only=True`` (``{"state_dict": ...}``
    is unwrapped). Never unpickles anything but tensors and plain types.

    Raises:
        GanaugModelError: not a file, unreadable or damaged, a ganaug model or classifier
            file, or no mapping of names to tensors.
    """
    fix = (f"Give the weights of timm '{name}' as a local .safetensors or .pth file (nothing "
           "is downloaded).")
    if not path.is_file():
        raise GanaugModelError(f"Feature weights file {path} does not exist or is not a file. "
                               + fix)
    if path.suffix.lower() == ".safetensors":
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt", device="cpu") as f:
                meta = f.metadata() or {}
                kind = {"generator": "a ganaug generator model file, not the weights of a "
                                     "timm model",
                        "classifier": "a ganaug classifier file, a network rebuilt by "
                                      f"ganaug.evaluation.load_classifier, not by timm '{name}'",
                        }.get(file_kind(meta))
                state: Any = {} if kind else {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
        except (SafetensorError, OSError, ValueError) as err:
            raise GanaugModelError(f"{path} cannot be read as safetensors ({err}); it is "
                                   f"damaged or no safetensors file. {fix}") from err
        if kind:
            raise GanaugModelError(f"{path} is {kind}. {fix}")
    else:
        try:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as err:  # torch raises several types for damaged / foreign files
            problem = " ".join(str(err).split())[:200]
            raise GanaugModelError(
                f"{path} cannot be read as a torch state dict ({type(err).__name__}: "
                f"{problem}); it is damaged, or a pickle of more than tensors (ganaug reads "
                f"weights only). {fix}") from err
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
    if not isinstance(state, dict):
        raise GanaugModelError(f"{path} holds a {type(state).__name__}, not a state dict "
                               f"(parameter names to tensors). {fix}")
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise GanaugModelError(
                f"{path} holds a state dict whose entry {str(key)!r:.60} is of type "
                f"{type(value).__name__}, not a tensor (a training checkpoint?). {fix}")
    return state


def classifier_extractor(model: torch.nn.Module, train_spec: str, backbone: str,
                         device: DeviceLike = None) -> FeatureExtractor:
    """The pooled pre-logits of ``model``, a ``backbone`` classifier trained on ``train_spec``."""
    return FeatureExtractor(
        name=f"{backbone} trained on {train_spec or 'the training data'}",
        note=NOT_INCEPTION_NOTE.format(backbone=backbone),
        fn=lambda images: extract_features(model, images, device=device))

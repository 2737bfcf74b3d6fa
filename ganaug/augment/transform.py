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
from ganaug._classnames import dataset_class_to_idx
from ganaug.augment.classes import ClassMap, declared_class_to_idx, parse_classes
from ganaug.augment.counts import declared_targets
from ganaug.augment.functional import check_has_values, check_unnormalised, match_image
from ganaug.augment.source import GeneratorSource, SampleBank
from ganaug.errors import GanaugDataError
from ganaug.generator import Generator

__all__ = ["GANAugment", "LabeledTransformDataset", "default_labels_getter",
           "with_labels"]

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
        generator: a :class:`ganaug.Generator` or a model file path (loaded lazily in each
            DataLoader worker).
        p: replacement probability in [0, 1].
        classes: the dataset's classes: its names in label order (``dataset.classes``), its
            ``{name: label}`` (``dataset.class_to_idx``), or ``"generator"`` when the labels are
            the generator's own class indices. Label ``i`` becomes the generator's class of the
            same name. Inside :func:`with_labels` the dataset's declared classes are used; an
            int label with no classes known is refused (a class-name label always works).
        only_classes: replace only samples of these classes (names), e.g. the rare ones.
        seed: base seed of the :class:`SampleBank`.
        bank_size: images generated per refill and class.
        truncation: in (0, 1], see :meth:`ganaug.Generator.noise`.
        reuse: times each generated image is served (see :class:`SampleBank`); raise it
            when the generator is the DataLoader's bottleneck.
        labels_getter: ``sample -> label`` (default :func:`default_labels_getter`).

    Raises:
        GanaugConfigError: bad ``p``/``bank_size``/``truncation``, ``only_classes`` that are
            not class names of the generator; (when called) an int label with no classes known.
        GanaugDataError: class names the generator does not have; (when called) the sample
            has no label, a label the generator lacks, or a float image outside [0, 1]
            (``GANAugment`` placed after ``Normalize``).
    """

    def __init__(self, generator: Generator | str | os.PathLike | GeneratorSource,
                 p: float = 0.5, *, classes: Any = None, only_classes: Any = None,
                 seed: int | None = None, bank_size: int = 64, truncation: float = 1.0,
                 reuse: int = 1,
                 labels_getter: Callable[[Any], Any] = default_labels_getter) -> None:
        """Build the transform; the arguments are described in :class:`GANAugment`."""
        super().__init__()
        self.p = check_probability("p", p)
        self.bank = SampleBank(generator, bank_size=bank_size, seed=seed,
                               truncation=truncation, reuse=reuse)
        self.labels_getter = labels_getter
        self.class_map = ClassMap(self.bank.classes, classes, where="GANAugment")
        self._only = (None if only_classes is None else
                      self.class_map.names_to_generator(only_classes, arg="only_classes"))
        self.only_classes = None if only_classes is None else list(only_classes)

    def bind_classes(self, classes: Mapping[str, int] | str, what: str = "the dataset") -> None:
        """Map a dataset's labels by name (``{name: label}`` or ``"generator"``);
        :func:`with_labels` calls it."""
        self.class_map.bind(classes, what)

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
        cls = self.class_map(label)
        flat, spec = tree_flatten(sample)
        targets = _image_leaves(flat, label)
        _check_sample(flat, targets, label)
        check_has_values("GANAugment", *(flat[i] for i in targets))
        for i in targets:
            check_unnormalised(flat[i], "GANAugment",
                               "Put GANAugment before Normalize (and before any transform that "
                               "rescales), e.g. v2.Compose([GANAugment(gen), v2.ToImage(), "
                               "v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)]).")
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
        of ``only_classes`` and there is an image to replace (``flat_inputs`` is not empty); then
        ``fake`` is the next image of class ``cls`` from the bank.
        """
        apply = bool(torch.rand(()) < self.p)
        apply = apply and cls is not None and bool(flat_inputs) and (
            self._only is None or cls in self._only)
        return {"apply": apply, "fake": self.bank.draw(cls) if apply else None}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        """``inpt``, or ``params["fake"]`` converted to its type, size and channels."""
        return match_image(params["fake"], inpt) if params["apply"] else inpt

    def extra_repr(self) -> str:
        only = "" if self.only_classes is None else f", only_classes={self.only_classes}"
        return (f"p={self.p}, classes={self.class_map!r}{only}, bank_size={self.bank.bank_size}, "
                f"truncation={self.bank.truncation}, reuse={self.bank.reuse}")


def _describe(sample: Any) -> str:
    if isinstance(sample, PIL.Image.Image):
        return f"a PIL image ({sample.mode} {sample.width}x{sample.height})"
    if isinstance(sample, torch.Tensor):
        return f"a tensor of shape {tuple(sample.shape)}"
    return f"a {type(sample).__name__}"


#: tv_tensors that describe the image's content: stale once it is replaced.
SPATIAL_TYPES = tuple(getattr(tv_tensors, name) for name in ("Mask", "BoundingBoxes", "KeyPoints")
                      if hasattr(tv_tensors, name))


def _check_sample(flat: list[Any], targets: set[int], label: Any) -> None:
    """Refuse, whatever ``p``, a sample with no image to replace (a path, a video: it came back
    unchanged) or with non-empty masks/boxes/keypoints (they would describe the old image)."""
    if not targets:
        kinds = ", ".join(type(x).__name__ for x in flat if x is not label) or "nothing"
        raise GanaugDataError(
            f"GANAugment found no image to replace in the sample (it holds: {kinds}), so it "
            "would silently do nothing. It replaces a PIL image, a (C, H, W) or (H, W) tensor, "
            "a tv_tensors.Image or a NumPy (H, W, C) array: put it after the step that loads "
            "the image (a video or a batch is not one image; for batches use "
            "ganaug.BatchMixer).")
    stale = sorted({type(x).__name__ for x in flat if isinstance(x, SPATIAL_TYPES) and x.numel()})
    if stale:
        raise GanaugDataError(
            f"GANAugment replaces the whole image, so the sample's {', '.join(stale)} would no "
            "longer match it. Use it in pipelines of image and label only (classification), or "
            "apply it to the samples without masks, boxes or keypoints.")


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


def apply_transform(transform: Callable | None, img: Any, label: Any,
                    takes_label: bool | None = None) -> tuple[Any, Any]:
    """Apply ``transform`` to a sample: ``transform(img, label)`` when it takes a label (v2
    transforms, ``v2.Compose``, two-argument callables), else ``transform(img)``.
    ``takes_label`` skips the signature check (``None``: inspect ``transform``)."""
    if transform is None:
        return img, label
    if _takes_label(transform) if takes_label is None else takes_label:
        out = transform(img, label)
        if isinstance(out, (tuple, list)) and len(out) == 2:
            return out[0], out[1]
        return out, label
    return transform(img), label


class LabeledTransformDataset(Dataset):
    """A dataset wrapper that runs a label-aware transform, then a settable ``transform``.

    ``dataset[i] -> (image, label)``; ``label_transform(image, label)`` runs first (the GAN
    step), then ``transform`` (``None`` until set; label-aware or image-only, see
    :func:`apply_transform`). timm's ``create_loader`` assigns ``dataset.transform``: it lands
    after the GAN step instead of replacing it. See :func:`with_labels`.
    """

    def __init__(self, dataset: Dataset, label_transform: Callable | None,
                 transform: Callable | None = None) -> None:
        self.dataset = dataset
        self.label_transform = label_transform
        self.transform = transform

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        img, label = self.dataset[index][:2]
        img, label = apply_transform(self.label_transform, img, label,
                                     self._takes_label(self.label_transform))
        return apply_transform(self.transform, img, label, self._takes_label(self.transform))

    def _takes_label(self, transform: Callable | None) -> bool:
        """:func:`_takes_label`, remembered per transform object (inspecting costs ~0.4 ms)."""
        cache = self.__dict__.setdefault("_signature_cache", {})
        key = id(transform)
        if key not in cache or cache[key][0] is not transform:
            if len(cache) > 8:
                cache.clear()
            cache[key] = (transform, transform is not None and _takes_label(transform))
        return cache[key][1]

    @property
    def class_to_idx(self) -> dict[str, int]:
        found = dataset_class_to_idx(self.dataset)
        if found is None:
            raise AttributeError(f"{type(self.dataset).__name__} declares no class names")
        return found

    @property
    def classes(self) -> list[str]:
        classes = getattr(self.dataset, "classes", None)
        if classes is not None:
            return classes
        mapping = self.class_to_idx
        return sorted(mapping, key=mapping.__getitem__)

    @property
    def targets(self) -> list:
        """The wrapped dataset's labels (also of a ``Subset``/``ConcatDataset``), unread."""
        found = getattr(self.dataset, "targets", None)
        found = found if found is not None else declared_targets(self.dataset)
        if found is None:
            raise AttributeError(f"{type(self.dataset).__name__} declares no targets")
        return found

    def __repr__(self) -> str:
        return (f"with_labels({self.dataset!r}, {self.label_transform!r}"
                + (f", transform={self.transform!r})" if self.transform is not None else ")"))


def gan_augments(transform: Any) -> list[GANAugment]:
    """Every :class:`GANAugment` in ``transform`` (through ``Compose``/``RandomApply``/...)."""
    found: list[GANAugment] = []
    seen: set[int] = set()
    stack = [transform]
    while stack:
        item = stack.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, GANAugment):
            found.append(item)
            continue
        children = getattr(item, "transforms", None)
        if isinstance(children, (list, tuple, torch.nn.ModuleList)):
            stack.extend(children)
        if isinstance(item, torch.nn.Module):
            stack.extend(item.children())
    return found


def with_labels(dataset: Dataset, transform: Callable | None, *,
                classes: Any = None) -> LabeledTransformDataset:
    """Wrap an ``(image, label)`` dataset so ``transform`` receives the label too.

    torchvision's ImageFolder/CIFAR10 and timm's datasets call ``transform(image)`` alone, so
    a label-aware transform such as :class:`ganaug.GANAugment` cannot reach the label. The
    wrapper reads ``dataset[i] -> (image, label)`` and returns ``transform(image, label)``
    (kept as ``label_transform``). Its ``transform`` attribute starts as ``None`` and is
    settable: what is assigned there (e.g. by timm's ``create_loader``) runs **after** the
    label-aware step, with the label when it takes two arguments, on the image alone
    otherwise. ``classes``, ``class_to_idx`` and ``targets`` come from ``dataset``.

    Class identity: every :class:`GANAugment` inside ``transform`` maps the dataset's labels
    to the generator's classes **by name**, from ``classes=`` when given, else from what the
    dataset declares (``class_to_idx``, timm's ``reader.class_to_idx``, ``classes``, through
    ``Subset``/``ConcatDataset``).

    Args:
        dataset: a map-style dataset returning ``(image, int label)``; give it no
            ``transform`` of its own (the wrapper's runs after it).
        transform: e.g. ``v2.Compose([ganaug.GANAugment(gen), v2.RandomCrop(32, 4), ...])``.
        classes: the dataset's classes (names in label order, ``{name: label}``, or
            ``"generator"``), overriding what it declares.

    Raises:
        GanaugDataError: the dataset's class names are not all the generator's (both lists
            named), or a GANAugment already bound to other names.
    """
    mapping = parse_classes(classes)
    what = "classes="
    if mapping is None:
        mapping = declared_class_to_idx(dataset)
        what = f"the dataset ({type(dataset).__name__})"
    if mapping is not None:
        for aug in gan_augments(transform):
            aug.bind_classes(mapping, what)
    return LabeledTransformDataset(dataset, transform)

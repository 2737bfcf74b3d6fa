"""Pure kernels of the augmenters: match a synthetic image to a real one, look up classes.

:func:`match_image` converts one generated ``(C, H, W) uint8`` image to the type, size, channels
and value range of the image it replaces, through a ``{type: kernel}`` table like torchvision's
``transforms.v2.functional`` (https://pytorch.org/vision/stable/transforms.html).
:func:`label_to_index` is the one class lookup (names, ints, 0-d tensors) of every augmenter.
"""

from __future__ import annotations

import bisect
import itertools
import operator
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import PIL.Image
import torch
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as F

from ganaug._checks import check_int
from ganaug._imaging import fit_images, normalize
from ganaug.errors import GanaugConfigError, GanaugDataError, GanaugError, did_you_mean

__all__ = ["LabelRuns", "UnsupportedImageError", "check_has_values",
           "check_unnormalised", "fit_images", "label_to_index",
           "match_image", "normalize", "per_class_counts"]


#: A float image with values outside [0, 1] by more than this was normalised before us.
RANGE_SLACK = 0.01


class UnsupportedImageError(GanaugDataError, TypeError):
    """:func:`match_image` has no kernel for this type of image."""


def _channels_of_mode(mode: str) -> int:
    return 1 if mode in ("L", "1", "I", "F", "LA") or mode.startswith("I;16") else 3


#: byte order of PIL's 16-bit grey modes (0..65535, as torchvision's ToImage reads them)
_UINT16_MODES = {"I;16": "<u2", "I;16L": "<u2", "I;16B": ">u2", "I;16N": "=u2"}


def _not_an_image(shape, kind: str) -> GanaugDataError:
    return GanaugDataError(
        f"Expected one image as a {kind} with 1 or 3 channels, got shape {shape}. Per-sample "
        "transforms take one image; for batches use ganaug.BatchMixer."
    )


def _match_pil(fake: torch.Tensor, like: PIL.Image.Image) -> PIL.Image.Image:
    if like.mode == "I":
        raise UnsupportedImageError(
            "Cannot replace a PIL mode I image (32-bit integers): its value range is unknown "
            "(16-bit scans and 0..255 data both come as mode I), so a synthetic image cannot "
            "be put on its scale. Convert the images first: to 'I;16' for 16-bit data, to "
            "'L' for 8-bit (e.g. in the dataset's loader).")
    if like.mode == "F":  # ganaug, like torchvision's ToImage, reads float images as [0, 1]
        arr = np.asarray(like)
        low, high = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
        if not (low >= -RANGE_SLACK and high <= 1 + RANGE_SLACK):  # NaN fails too
            raise GanaugDataError(
                f"A PIL mode F image has values in [{low:g}, {high:g}], not [0, 1]: a synthetic "
                "image cannot be put on its scale. Scale the images to [0, 1] (or convert "
                "them to 8-bit 'L') before GANAugment.")
    out = fit_images(fake, _channels_of_mode(like.mode), (like.height, like.width))
    if like.mode == "F":
        return PIL.Image.fromarray(out[0].numpy().astype(np.float32) / 255.0)  # mode F
    if like.mode in _UINT16_MODES:
        arr = out[0].numpy().astype(np.uint16) * 257  # 255 -> 65535
        data = arr.astype(_UINT16_MODES[like.mode]).tobytes()
        return PIL.Image.frombytes(like.mode, like.size, data)
    img = F.to_pil_image(out)
    if like.mode in ("P", "PA") and like.getpalette():
        # The real image's own palette, so that an index means the same colour in both (PIL's
        # convert("P") would use its 216-colour web palette).
        palette = PIL.Image.new("P", (1, 1))
        palette.putpalette(like.getpalette())
        img = img.convert("RGB").quantize(palette=palette, dither=PIL.Image.Dither.NONE)
    return img if img.mode == like.mode else img.convert(like.mode)


def _unknown_range(dtype: Any) -> UnsupportedImageError:
    return UnsupportedImageError(
        f"Cannot replace an image of dtype {dtype}; accepted: uint8, or float in [0, 1] (and "
        "integer tensors in torchvision's full-range convention). The value range of this "
        "dtype is unknown (a bool array is a mask): convert the images to uint8 first.")


def _match_ndarray(fake: torch.Tensor, like: np.ndarray) -> np.ndarray:
    chw = like.ndim == 3
    if like.ndim not in (2, 3) or (chw and like.shape[2] not in (1, 3)):
        raise _not_an_image(like.shape, "NumPy (H, W, C) array")
    if like.dtype != np.uint8 and like.dtype.kind != "f":
        raise _unknown_range(like.dtype)  # x / 255 cast to uint16/int64 was all 0
    out = fit_images(fake, like.shape[2] if chw else 1, like.shape[:2])
    arr = out.permute(1, 2, 0).numpy() if chw else out[0].numpy()
    if like.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    return (arr.astype(np.float32) / 255.0).astype(like.dtype)


def _match_tensor(fake: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    if like.ndim not in (2, 3) or (like.ndim == 3 and like.shape[0] not in (1, 3)):
        raise _not_an_image(tuple(like.shape), "tensor (C, H, W)")
    if like.dtype == torch.bool or like.is_complex():
        raise _unknown_range(like.dtype)
    if not like.is_floating_point() and like.dtype not in (torch.uint8, torch.uint16):
        # Signed and 32/64-bit integer tensors: no image format holds them, and their values are
        # most likely 0..255 pixels; the full-range scale made a fake of 200 ~7.2e18 in int64.
        raise UnsupportedImageError(
            f"Cannot replace an image tensor of dtype {like.dtype}: its values are most likely "
            "0..255 pixels (torch.tensor(array.astype(int))), which torchvision's full-range "
            "convention would read on the dtype's whole scale, so synthetic images would come out "
            "far too bright. Convert the images with .to(torch.uint8) (0..255) or to float in "
            "[0, 1] (torch.uint16 is read as 16-bit pixels).")
    channels = like.shape[0] if like.ndim == 3 else 1
    out = fit_images(fake, channels, like.shape[-2:])
    out = F.to_dtype(out, like.dtype, scale=True) if like.dtype != torch.uint8 else out
    out = out.to(like.device)
    return out[0] if like.ndim == 2 else out


def _match_tv_image(fake: torch.Tensor, like: tv_tensors.Image) -> tv_tensors.Image:
    return tv_tensors.wrap(_match_tensor(fake, like.as_subclass(torch.Tensor)), like=like)


#: input type -> kernel; the most specific type in the input's MRO wins.
KERNELS: dict[type, Callable[[torch.Tensor, Any], Any]] = {
    PIL.Image.Image: _match_pil,
    np.ndarray: _match_ndarray,
    tv_tensors.Image: _match_tv_image,
    torch.Tensor: _match_tensor,
}


def match_image(fake: torch.Tensor, like: Any) -> Any:
    """Convert a synthetic image to the type, size, channels and value range of ``like``.

    Args:
        fake: ``(C, H, W) uint8`` in [0, 255], C in {1, 3}.
        like: a PIL image (any mode), a ``(C, H, W)`` or ``(H, W)`` tensor (uint8, or float in
            [0, 1]), a ``tv_tensors.Image``, or a NumPy ``(H, W, C)``/``(H, W)`` array.

    Returns:
        ``fake`` as the same type as ``like``: PIL in the same mode (a palette image on its
        own palette, 16-bit ``I;16`` modes on 0..65535, ``F`` in [0, 1], as torchvision's
        ``ToImage`` reads them), a tensor of the same dtype and device (float in [0, 1]), a
        ``tv_tensors.Image``, or an array of the same dtype.

    Raises:
        UnsupportedImageError: no kernel for ``type(like)``, or a dtype of unknown value range
            (bool, NumPy integers other than uint8, integer tensors other than uint8/uint16,
            PIL mode ``I``) (a GanaugDataError and TypeError).
        GanaugDataError: a PIL mode ``F`` image outside [0, 1].
        GanaugDataError: ``like`` is not a single image with 1 or 3 channels, or has no pixels.
    """
    for cls in type(like).__mro__:
        kernel = KERNELS.get(cls)
        if kernel is not None:
            return kernel(fake, like)
    raise UnsupportedImageError(
        f"Cannot replace an image of type {type(like).__name__}. Accepted: PIL images, "
        "tensors (C, H, W), tv_tensors.Image and NumPy (H, W, C) arrays."
    )


def label_to_index(label: Any, classes: Sequence[str], *, what: str = "", fix: str = "",
                   error: type[GanaugError] = GanaugConfigError) -> int:
    """The class index of ``label``: a class name, an int, a NumPy int or a 1-element int tensor.

    Args:
        label: the label to look up.
        classes: the class names; index ``i`` is class ``classes[i]``.
        what: where the label comes from, for the messages (e.g. ``"counts"``).
        fix: advice appended to the unknown and out-of-range messages.
        error: the error raised for an unknown or out-of-range label, or a non-label.

    Raises:
        GanaugDataError: a float or multi-element tensor or array.
        error: an unknown class name, a label out of ``0..len(classes)-1``, or not a label.
    """
    where, fix = (f" in {what}" if what else ""), (f" {fix}" if fix else "")
    if isinstance(label, (torch.Tensor, np.ndarray)):
        is_tensor = isinstance(label, torch.Tensor)
        count = label.numel() if is_tensor else label.size
        floating = label.is_floating_point() if is_tensor else label.dtype.kind not in "iu"
        if count != 1 or floating:
            raise GanaugDataError(
                f"Expected one integer class label per sample{where}, got a "
                f"{'tensor' if is_tensor else 'NumPy array'} of shape {tuple(label.shape)} and "
                f"dtype {label.dtype}. Pass the class index (int).")
        label = label.item()
    names = ", ".join(map(str, classes))
    if isinstance(label, str):
        if label in classes:
            return list(classes).index(label)
        raise error(f"Unknown class '{label}'{where}. Classes: {names}."
                    + did_you_mean(label, classes) + fix)
    if isinstance(label, (bool, float)) or not isinstance(label, (int, np.integer)):
        raise error(f"A label{where} must be an int or a class name, got {label!r} "
                    f"({type(label).__name__}). Use 0..{len(classes) - 1} or one of: {names}.")
    if not 0 <= label < len(classes):
        raise error(f"Label {int(label)}{where} is out of range: there are {len(classes)} "
                    f"classes (labels 0..{len(classes) - 1}).{fix}")
    return int(label)


def per_class_counts(value: Mapping | Sequence | int, classes: Sequence[str], *,
                     what: str) -> list[int]:
    """Per-class non-negative ints from an int, a sequence or a ``{class: count}`` mapping."""
    if isinstance(value, Mapping):
        out = [0] * len(classes)
        for key, n in value.items():
            out[label_to_index(key, classes, what=what)] = n
    elif isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        # one count for every class; a float, a bool or a string is refused as that count
        out = [check_int(what, value, minimum=0)] * len(classes)
    else:
        out = list(value)
        if len(out) != len(classes):
            raise GanaugConfigError(f"{what} has {len(out)} entries for {len(classes)} classes; "
                                    "give one count per class or a {class: count} dict.")
    name = what if isinstance(value, (int, np.integer)) else f"each entry of {what}"
    return [check_int(name, n, minimum=0) for n in out]


def outside_unit_range(image: Any, slack: float) -> tuple[float, float] | None:
    """``(low, high)`` of a float image or batch whose values leave ``[-slack, 1 + slack]``
    (or are not finite), else ``None``; uint8 and non-array inputs are never outside."""
    if isinstance(image, torch.Tensor):
        floating, empty = image.is_floating_point(), image.numel() == 0
    elif isinstance(image, np.ndarray):
        floating, empty = image.dtype.kind == "f", image.size == 0
    else:
        return None
    if not floating or empty:
        return None
    if isinstance(image, torch.Tensor):
        low, high = (float(v) for v in torch.aminmax(image.detach().float()))
    else:
        low, high = float(image.min()), float(image.max())
    if low < -slack or high > 1 + slack or not (np.isfinite(low) and np.isfinite(high)):
        return low, high
    return None


def check_has_values(where: str, *tensors: Any) -> None:
    """Refuse tensors on the ``meta`` device: they hold shapes but no values to check, label
    or replace (torch failed deep inside with "Tensor.item() cannot be called on meta")."""
    if any(isinstance(t, torch.Tensor) and t.is_meta for t in tensors):
        raise GanaugDataError(
            f"{where} got a tensor on the meta device, which has a shape but no values: there "
            "is nothing to check, label or replace. Run it on real data (cpu, cuda); when "
            "tracing shapes with meta tensors, leave the augmentation out of the trace.")


def check_unnormalised(image: Any, where: str, fix: str) -> None:
    """Refuse a float image with values outside [0, 1]: it was normalised before ``where``."""
    bad = outside_unit_range(image, RANGE_SLACK)
    if bad is not None:
        low, high = bad
        raise GanaugDataError(
            f"{where} got a float image with values in [{low:.3g}, {high:.3g}], not [0, 1]: it "
            f"was normalised (or scaled) before {where}, which would insert [0, 1] synthetic "
            f"images into a normalised stream. {fix}")


class LabelRuns(Sequence):
    """``counts[c]`` copies of ``labels[c]``, class after class: a :class:`SyntheticDataset`'s
    ``targets``, indexable like the list it stands for without holding one item per image."""

    def __init__(self, counts: Sequence[int], labels: Sequence[int]) -> None:
        self._runs = [(int(label), int(n)) for label, n in zip(labels, counts) if n]
        self._starts = list(itertools.accumulate((n for _, n in self._runs), initial=0))

    def __len__(self) -> int:
        return self._starts[-1]

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        index = operator.index(index)
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"label index {index} is out of range for {len(self)} images")
        return self._runs[bisect.bisect_right(self._starts, index) - 1][0]

    def __iter__(self) -> Iterator[int]:
        for label, n in self._runs:
            yield from itertools.repeat(label, n)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, (str, bytes)):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other))

    __hash__ = None  # type: ignore[assignment]  (a list's equal is not hashable either)

    def __repr__(self) -> str:
        return "LabelRuns(" + ", ".join(f"{label} x {n}" for label, n in self._runs) + ")"

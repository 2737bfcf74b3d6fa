"""Pure image-tensor kernels shared by data loading, the augmenters and the classifiers.

Tensors are ``(N, C, H, W)`` or ``(C, H, W)``; uint8 in [0, 255] or float. Nothing here
changes the value range except :func:`to_float01` and :func:`normalize`. Also: bounded reading
of one image file (:func:`read_image_file`), the memory check of a load, and the
ImageFolder-like dataset views that :mod:`ganaug.data` re-exports; the memory estimate every
"too many images" refusal shares (:func:`memory_shortfall`, :func:`check_sample_memory`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ganaug.errors import GanaugConfigError, GanaugDataError

__all__ = ["GREY_MODES", "MAX_DECODED_PIXELS", "ClassImageDataset", "ImagesDataset", "UnreadableImage",
           "available_memory", "check_batch_memory", "check_memory", "check_sample_memory", "decoded_array",
           "device_memory", "fit_images", "human_bytes", "memory_shortfall", "normalize",
           "read_image_file", "sample_bytes", "to_float01"]


def fit_images(images: torch.Tensor, channels: int | None = None,
               size: int | Sequence[int] | None = None) -> torch.Tensor:
    """Convert ``images`` to ``channels`` (1 <-> 3; luma for RGB -> grey) and resize them.

    Args:
        images: ``(N, C, H, W)`` or ``(C, H, W)``, uint8 or float, C in {1, 3}.
        channels: 1, 3, or ``None`` to keep them.
        size: ``S`` or ``(H, W)``; ``None`` keeps the size. Resizing is antialiased bilinear.

    Returns:
        The converted images, same dtype; the input itself when nothing changes.
    """
    from torchvision.transforms.v2 import functional as F

    c = images.shape[-3]
    if channels is not None and c != channels:
        if channels == 1 and c == 3:
            images = F.rgb_to_grayscale(images, num_output_channels=1)
        elif channels == 3 and c == 1:
            images = images.expand(*images.shape[:-3], 3, *images.shape[-2:]).contiguous()
        else:
            raise GanaugDataError(
                f"Cannot convert {c}-channel images to {channels} channels; 1 (grey) and 3 (RGB) "
                "are supported. Convert the images to RGB or L first.")
    if size is not None:
        hw = (int(size), int(size)) if isinstance(size, int) else tuple(int(s) for s in size)
        if min(hw) < 1:
            raise GanaugDataError(
                f"The image to match has no pixels (size {hw[0]}x{hw[1]}); synthetic images "
                "cannot be resized to it. Drop empty images from the data.")
        if tuple(images.shape[-2:]) != hw:
            if images.dtype == torch.uint8 and min(hw) == 1:
                # torch's antialiased uint8 kernel fails an internal assert at 1x1 (RGB)
                images = F.resize(images.float(), list(hw), antialias=True)
                images = images.round_().clamp_(0, 255).to(torch.uint8)
            else:
                images = F.resize(images, list(hw), antialias=True)
    return images


def to_float01(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float32 [0, 1]; float images are returned as float32 unchanged."""
    return images.float().div(255.0) if images.dtype == torch.uint8 else images.float()


def normalize(images: torch.Tensor, mean: torch.Tensor | Sequence[float],
              std: torch.Tensor | Sequence[float]) -> torch.Tensor:
    """``(images - mean) / std`` per channel, for ``(N, C, H, W)`` or ``(C, H, W)`` floats."""
    mean_t = torch.as_tensor(mean, dtype=images.dtype, device=images.device)
    std_t = torch.as_tensor(std, dtype=images.dtype, device=images.device)
    shape = (-1, 1, 1)
    return (images - mean_t.reshape(shape)) / std_t.reshape(shape)


def unnormalize(images: torch.Tensor, mean: torch.Tensor | Sequence[float],
                std: torch.Tensor | Sequence[float]) -> torch.Tensor:
    """The inverse of :func:`normalize`, clamped to [0, 1]: float32 ``images * std + mean``."""
    images = images.float()
    mean_t = torch.as_tensor(mean, dtype=images.dtype, device=images.device).reshape(-1, 1, 1)
    std_t = torch.as_tensor(std, dtype=images.dtype, device=images.device).reshape(-1, 1, 1)
    return (images * std_t + mean_t).clamp(0, 1)


# -- reading image files --------------------------------------------------------------------------
#: Most pixels ganaug decodes from one file (PIL's own bomb limit, ~89 M: a 9,459 x 9,459 image).
MAX_DECODED_PIXELS = 89_478_485
#: Grey PIL modes; anything else is read as RGB (palette, RGBA, CMYK, YCbCr, ...).
GREY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}


def available_memory() -> int:
    """Bytes of memory this process may still allocate without swapping (psutil's
    ``available``: ``MemAvailable`` on Linux, the free + inactive pages elsewhere)."""
    import psutil

    return int(psutil.virtual_memory().available)


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} PB"  # pragma: no cover


def device_memory(device: Any = None) -> int:
    """Bytes free on ``device``: a CUDA device's free memory, else :func:`available_memory`."""
    if device is not None and torch.device(device).type == "cuda":
        return int(torch.cuda.mem_get_info(torch.device(device))[0])
    return available_memory()


def memory_shortfall(n: int, bytes_each: int, device: Any = None) -> tuple[int, int, int] | None:
    """``(need, have, fits)`` when ``n`` items of ``bytes_each`` bytes do not fit in the memory
    of ``device`` (the host by default), where ``fits`` is the most items that do; else ``None``.

    The one memory estimate every "too many images" refusal uses, so each caller only words
    its own message and fix.
    """
    need, have = int(n) * int(bytes_each), device_memory(device)
    if need <= have:
        return None
    return need, have, have // max(1, int(bytes_each))


def check_memory(n: int, c: int, h: int, w: int, what: str) -> None:
    """Refuse, before allocating, ``n`` uint8 images of ``c x h x w`` that do not fit in memory.

    The budget is half the available memory: loading keeps the decoded images and their copy.
    """
    short = memory_shortfall(n, 2 * int(c) * int(h) * int(w))
    if short is not None:
        need, have, _ = short
        raise GanaugDataError(
            f"{what}: {n:,} images of {c}x{h}x{w} need {human_bytes(need // 2)} as uint8 (twice "
            f"that while loading), but only {human_bytes(have)} of memory is available. Lower "
            f"size=, take fewer images (per_class=N), or split the data.")


def check_batch_memory(batch_size: int, pixels: int) -> None:
    """Refuse, before drawing one, a classifier batch of ``batch_size`` images of ``pixels``
    values each that cannot fit in memory: its int64 index and label, the uint8 pixels and
    two float32 copies (the network's input), before any activation.

    Raises:
        GanaugConfigError: naming the batch, the memory needed and available, and a batch size
            that fits.
    """
    short = memory_shortfall(batch_size, 16 + 9 * int(pixels))
    if short is not None:
        need, have, fits = short
        raise GanaugConfigError(
            f"batch_size={int(batch_size):,}: one classifier batch of that many images needs "
            f"at least {human_bytes(need)} of memory, but {human_bytes(have)} is available. "
            f"Use a batch of at most {fits:,} images, e.g. batch_size=128.")


#: Copies of each image's pixels a sampling call holds at its peak, per output: the batch
#: outputs and their concatenation (uint8 or float32), plus the PIL images for "pil".
_OUTPUT_BYTES = {"uint8": 2, "float": 8, "pil": 3}


def sample_bytes(channels: int, image_size: int, z_dim: int, output: str = "uint8") -> int:
    """Bytes one image costs a :meth:`ganaug.Generator.sample` call at its peak: its noise row
    (float32), its int64 label and the copies of its pixels in ``output``."""
    return 4 * int(z_dim) + 8 + _OUTPUT_BYTES.get(output, 8) * int(channels) * int(image_size) ** 2


def check_sample_memory(n: int, channels: int, image_size: int, z_dim: int, *,
                        output: str = "uint8", device: Any = None, what: str = "",
                        fix: str = "", divisor: int = 1,
                        extra_bytes: int = 0) -> None:
    """Refuse, before allocating, ``n`` generated images that do not fit in memory.

    Args:
        n: images that one call holds at once.
        channels, image_size, z_dim: the generator's.
        output: as in :meth:`ganaug.Generator.sample`.
        device: where the images are kept (host memory by default).
        what: the request, e.g. ``"n_per_class=10**9 (3 classes)"``; default ``n images``.
        fix: how to ask for fewer; ``{fits}`` is replaced by the most images that fit,
            divided by ``divisor`` (e.g. the class count, for a fitting ``n_per_class``).
        extra_bytes: what each image costs the caller beyond :func:`sample_bytes`.

    Raises:
        GanaugConfigError: naming the memory needed and available, and ``fix``.
    """
    per = sample_bytes(channels, image_size, z_dim, output) + int(extra_bytes)
    short = memory_shortfall(n, per, device)
    if short is not None:
        need, have, fits = short
        fits //= max(1, int(divisor))
        fix = fix.format(fits=f"{fits:,}") if fix else f"Ask for at most {fits:,} images."
        raise GanaugConfigError(
            f"{what + ': ' if what else ''}{int(n):,} generated images of {channels}x"
            f"{image_size}x{image_size} ({output}) need about {human_bytes(need)} of memory, but "
            f"{human_bytes(have)} is available. {fix}")


def decoded_array(img, path: str):
    """A loaded PIL image as ``H x W`` (grey) or ``H x W x 3`` uint8, scaled, never clipped.

    16-bit images are divided by 257 (65535 -> 255); float images (mode ``F``) in [0, 1] are
    multiplied by 255; other float ranges and 32-bit integer images are refused.
    """
    import numpy as np

    mode = img.mode
    if mode not in GREY_MODES:
        return np.array(img.convert("RGB"))
    if mode in ("1", "L", "LA"):
        return np.array(img.convert("L"))
    arr = np.asarray(img)
    if mode.startswith("I;16") or (mode == "I" and img.format == "PNG"):  # PNG 16-bit grey
        arr = arr.astype(np.float64)
        if arr.size and (arr.min() < 0 or arr.max() > 65535):
            raise GanaugDataError(f"16-bit image {path!r} has values outside 0..65535.")
        return np.rint(arr / 257.0).astype(np.uint8)
    if mode == "F":
        lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
        if not (np.isfinite(arr).all() and lo >= 0.0 and hi <= 1.0):
            raise GanaugDataError(
                f"float image {path!r} has values in [{lo:g}, {hi:g}]; ganaug reads float images "
                f"in [0, 1] (scaled by 255). Rescale it to [0, 1] or save it as an 8-bit image.")
        return np.rint(arr.astype(np.float64) * 255.0).astype(np.uint8)
    raise GanaugDataError(f"image {path!r} has 32-bit integer pixels (PIL mode {mode}), whose range "
                          f"ganaug cannot know. Save it as an 8- or 16-bit image.")


def read_image_file(path: str, size: int | None = None):
    """Decode one image file, bounded: ``(array, is_rgb, (w, h))``.

    With ``size``, large images are reduced while reading (JPEG draft mode, then PIL's
    ``reduce`` by an integer factor) so that at least ``2 * size`` pixels per side remain; the
    final antialiased resize happens in :func:`fit_images`.

    Raises:
        GanaugDataError: more than :data:`MAX_DECODED_PIXELS` pixels (a decompression bomb or
            a huge image), or pixel values ganaug cannot scale (see :func:`decoded_array`).
        UnreadableImage: the file cannot be read or decoded (the caller names them all).
    """
    import warnings

    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
        with img:
            w, h = img.size
            if w * h > MAX_DECODED_PIXELS:
                raise Image.DecompressionBombError(f"{w}x{h}")
            rgb = img.mode not in GREY_MODES
            if size is not None and min(w, h) >= 4 * size:
                if img.format == "JPEG":
                    img.draft("RGB" if rgb else "L", (2 * size, 2 * size))
                img.load()
                factor = min(img.size) // (2 * size)
                if factor > 1 and img.mode in ("1", "P", "PA"):
                    # reduce averages values: palette indices would become other colours
                    # ("PA"), and PIL refuses "P" and "1" (read as corrupt): colours first
                    img = img.convert("RGB" if rgb else "L")
                if factor > 1 and img.mode not in ("I;16", "I;16B", "I;16L", "I;16N"):
                    img = img.reduce(factor)
            img.load()
            return decoded_array(img, path), rgb, (w, h)
    except GanaugDataError:
        raise
    except Image.DecompressionBombError:
        w, h = _header_size(path)
        raise GanaugDataError(
            f"Image {path!r} is {w}x{h} pixels ({w * h:,}), more than the "
            f"{MAX_DECODED_PIXELS:,} pixels ganaug decodes per image (a decompression bomb or a "
            f"huge scan). Shrink or remove the file, then load again.") from None
    except (OSError, ValueError, SyntaxError) as err:  # PIL raises all three for broken files
        raise UnreadableImage(path, unreadable_reason(path, err)) from None


class UnreadableImage(Exception):
    """One image file that cannot be decoded; ``reason`` says why, in words."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path} ({reason})")
        self.path, self.reason = path, reason


def unreadable_reason(path: str, err: Exception) -> str:
    """Why ``path`` failed to decode with ``err``: a permission, a dangling link, an empty file,
    no image, or a truncated or corrupt one (the fixes differ: chmod, relink, delete)."""
    import errno
    import os

    from PIL import UnidentifiedImageError

    if isinstance(err, PermissionError):
        return "permission denied"
    if isinstance(err, FileNotFoundError) and os.path.islink(path):
        return f"a broken symbolic link to {os.readlink(path)!r}"
    if isinstance(err, UnidentifiedImageError):
        empty = os.path.isfile(path) and os.path.getsize(path) == 0
        return "an empty file, 0 bytes" if empty else "not an image PIL can read: another " \
            "format, or a damaged header"
    if isinstance(err, OSError) and err.errno not in (None, errno.EINVAL) and err.strerror:
        return err.strerror
    return f"truncated or corrupt: {err}"


def _header_size(path: str) -> tuple[int, int]:
    """``(w, h)`` from the header alone, past PIL's bomb check (nothing is decoded)."""
    from PIL import Image

    limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
        with Image.open(path) as img:
            return img.size
    finally:
        Image.MAX_IMAGE_PIXELS = limit


# -- (PIL image, label) dataset views (re-exported by ganaug.data) ------------------------------
class ClassImageDataset(torch.utils.data.Dataset):
    """Base of ganaug's ImageFolder-like datasets: ``(PIL image, int label)`` items.

    A subclass sets ``classes``, ``class_to_idx``, ``targets`` (one int label per item),
    ``transform`` and ``target_transform`` (all plain, settable attributes, as on ImageFolder)
    and implements :meth:`image`; ``__getitem__`` turns the image into a PIL image (mode ``L``
    for grey, ``RGB``) and applies the transforms as ImageFolder does.
    """

    classes: list[str]
    class_to_idx: dict[str, int]
    targets: list[int]
    transform: Any = None
    target_transform: Any = None

    def image(self, index: int) -> torch.Tensor:
        """Item ``index`` as ``(C, H, W) uint8`` (no transform)."""
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        from torchvision.transforms.v2.functional import to_pil_image

        img: Any = to_pil_image(self.image(index))
        target: Any = self.targets[index]
        if self.transform is not None:
            img = self.transform(img)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return img, target


class ImagesDataset(ClassImageDataset):
    """``(PIL image, int)`` view of a :class:`ganaug.data.LabeledImages` (mode ``L`` for grey, ``RGB``)."""

    def __init__(self, data, transform=None, target_transform=None):
        self.images = data.images
        self.classes = list(data.classes)
        self.class_to_idx = {name: k for k, name in enumerate(self.classes)}
        self.targets = data.labels.tolist()
        self.transform = transform
        self.target_transform = target_transform

    def image(self, index: int) -> torch.Tensor:
        return self.images[index]

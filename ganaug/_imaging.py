"""Pure image-tensor kernels shared by data loading, the augmenters and the classifiers.

Tensors are ``(N, C, H, W)`` or ``(C, H, W)``; uint8 in [0, 255] or float. Nothing here
changes the value range except :func:`to_float01` and :func:`normalize`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ganaug.errors import GanaugDataError


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
        if tuple(images.shape[-2:]) != hw:
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

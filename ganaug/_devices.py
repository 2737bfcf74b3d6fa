"""Device resolution: what ``device=`` means, everywhere in ganaug.

``device=None`` means *no preference*: code that runs an existing module (sampling, prediction)
leaves it where it is, and code that creates one (training, :func:`ganaug.load` when asked)
takes the best available device. ``"auto"`` always means the best available device: CUDA (this
rank's GPU), else MPS, else CPU. Any other value is read by ``torch.device`` and must exist on
this machine.
"""

from __future__ import annotations

from typing import Any

import torch

from ganaug.errors import GanaugConfigError

DeviceLike = str | torch.device | None


def best_device(local_rank: int = 0) -> torch.device:
    """CUDA (GPU ``local_rank`` modulo the count), else MPS, else CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    mps = getattr(torch.backends, "mps", None)
    return torch.device("mps" if mps is not None and mps.is_available() else "cpu")


def resolve_device(device: DeviceLike, *, local_rank: int = 0) -> torch.device:
    """``device`` as a :class:`torch.device` that exists here; ``None`` and ``"auto"``: the best.

    Raises:
        GanaugConfigError: an unknown device string, or a device this machine does not have.
    """
    if device is None or str(device) == "auto":
        return best_device(local_rank)
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise GanaugConfigError(
            f"Unknown device {device!r} ({err}). Use cpu, cuda, cuda:N, mps or auto.") from err
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise GanaugConfigError(
                f"device {str(device)!r} asked for CUDA, but torch sees no CUDA GPU here. Use "
                "device='cpu', or 'auto' to pick the best available device.")
        count = torch.cuda.device_count()
        if dev.index is None:
            dev = torch.device("cuda", local_rank % count)
        elif dev.index >= count:
            raise GanaugConfigError(
                f"device {str(device)!r}: only {count} CUDA device(s) exist (cuda:0 to "
                f"cuda:{count - 1}).")
    if dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise GanaugConfigError(
                f"device {str(device)!r}: MPS is not available on this machine. Use cpu or auto.")
    return dev


def check_device(device: DeviceLike) -> torch.device | None:
    """A ``device=`` argument checked as :func:`resolve_device` does; ``None`` stays ``None``
    (no preference), so the caller decides what it means."""
    return None if device is None else resolve_device(device)


def environment(device: torch.device) -> dict[str, Any]:
    """What a result was computed with: versions, platform, device and thread count."""
    import os
    import platform

    import timm
    import torchvision

    from ganaug import __version__

    return {"ganaug": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "torchvision": torchvision.__version__, "timm": timm.__version__,
            "platform": platform.platform(), "device": str(device),
            "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads()}

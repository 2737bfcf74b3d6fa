"""The loaded generator and its sampling API.

A :class:`Generator` wraps a registered generator network (see :mod:`ganaug.models.registry`)
together with the class names and the metadata of its model file. ``ganaug.load`` returns one;
the trainer samples its EMA copy through one, so in-memory and loaded models draw the same
images for the same seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ganaug.errors import GanaugConfigError, did_you_mean

OUTPUTS = ("uint8", "float", "pil")


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Map generator output ``(N, C, H, W) float in [-1, 1]`` to ``uint8 in [0, 255]``."""
    return ((x.float() + 1.0) * 127.5).round_().clamp_(0, 255).to(torch.uint8)


def to_unit_float(x: torch.Tensor) -> torch.Tensor:
    """Map generator output in ``[-1, 1]`` to ``float32 in [0, 1]`` (clamped)."""
    return ((x.float() + 1.0) * 0.5).clamp_(0.0, 1.0)


class Generator(nn.Module):
    """A class-conditional generator ready to sample.

    Attributes:
        net: the registered generator network, ``net(z, labels) -> [-1, 1]`` images.
        classes: class names, index ``i`` is label ``i``.
        metadata: the model file's metadata document (empty for an unsaved model).
    """

    def __init__(self, net: nn.Module, *, classes: Sequence[str] | None = None,
                 metadata: dict[str, Any] | None = None, arch: str | None = None) -> None:
        super().__init__()
        self.net = net
        num_classes = int(net.num_classes)
        self.classes = list(classes) if classes is not None else [str(i) for i in range(num_classes)]
        if len(self.classes) != num_classes:
            raise GanaugConfigError(
                f"{len(self.classes)} class names given for a generator of {num_classes} classes; "
                "pass one name per class."
            )
        self.metadata = dict(metadata or {})
        self.arch = arch or self.metadata.get("arch")
        self.eval()

    @property
    def num_classes(self) -> int:
        return int(self.net.num_classes)

    @property
    def image_size(self) -> int:
        return int(self.net.image_size)

    @property
    def channels(self) -> int:
        return int(self.net.channels)

    @property
    def z_dim(self) -> int:
        return int(self.net.z_dim)

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``(N, z_dim)`` noise and ``(N,)`` int64 labels to ``(N, C, H, W)`` float in [-1, 1]."""
        return self.net(z, labels)

    # -- labels ----------------------------------------------------------------------------
    def class_index(self, label: int | str) -> int:
        """The label index of a class name or an int, checked against this generator."""
        if isinstance(label, str):
            if label in self.classes:
                return self.classes.index(label)
            raise GanaugConfigError(
                f"Unknown class '{label}'. This generator has: {', '.join(self.classes)}."
                + did_you_mean(label, self.classes)
            )
        index = int(label)
        if not 0 <= index < self.num_classes:
            raise GanaugConfigError(
                f"Label {index} is out of range: this generator has {self.num_classes} classes "
                f"(labels 0..{self.num_classes - 1})."
            )
        return index

    def resolve_labels(self, labels=None, n_per_class: int | None = None) -> torch.Tensor:
        """Turn the ``labels``/``n_per_class`` arguments of :meth:`sample` into int64 labels.

        With ``n_per_class``, ``labels`` names the classes to draw (default: all) and the result
        is class-major: ``n_per_class`` of the first class, then of the second, ...
        """
        if labels is None:
            if n_per_class is None:
                raise GanaugConfigError("Pass labels=... or n_per_class=... to sample().")
            idx = list(range(self.num_classes))
        elif isinstance(labels, torch.Tensor):
            if labels.ndim > 1 or labels.is_floating_point():
                raise GanaugConfigError(
                    f"labels must be a 1-D integer tensor, got {tuple(labels.shape)} "
                    f"{labels.dtype}."
                )
            idx = [self.class_index(v) for v in labels.reshape(-1).tolist()]
        elif isinstance(labels, (int, str)):
            idx = [self.class_index(labels)]
        else:
            idx = [self.class_index(v) for v in labels]
        out = torch.tensor(idx, dtype=torch.int64)
        if n_per_class is not None:
            if int(n_per_class) < 1:
                raise GanaugConfigError(f"n_per_class must be >= 1, got {n_per_class}.")
            out = out.repeat_interleave(int(n_per_class))
        return out

    # -- sampling --------------------------------------------------------------------------
    def noise(self, n: int, *, seed: int | None = None, truncation: float = 1.0) -> torch.Tensor:
        """``(n, z_dim)`` float32 noise on the CPU, reproducible from ``seed``.

        ``truncation`` t < 1 resamples every component with ``|z| > t`` (the truncation
        trick: fewer, more typical images); t = 1 (the default) leaves z standard normal.
        """
        if not truncation > 0:
            raise GanaugConfigError(f"truncation must be > 0, got {truncation}.")
        if seed is None:
            seed = int(torch.randint(0, 2**62, (1,)).item())
        gen = torch.Generator().manual_seed(int(seed))
        z = torch.randn(n, self.z_dim, generator=gen)
        if truncation < 1.0:
            bad = z.abs() > truncation
            while bad.any():
                z[bad] = torch.randn(int(bad.sum()), generator=gen)
                bad = z.abs() > truncation
        return z

    def sample(self, labels=None, *, n_per_class: int | None = None, truncation: float = 1.0,
               seed: int | None = None, batch_size: int = 256, output: str = "uint8",
               device: str | torch.device | None = None, return_labels: bool = False):
        """Draw images of the requested classes.

        Args:
            labels: ints, class names or a 1-D int tensor: one image per entry. With
                ``n_per_class``, the classes to draw (default all), ``n_per_class`` each,
                class-major.
            n_per_class: images per class.
            truncation: see :meth:`noise`.
            seed: the same seed, labels and device give the same images, whatever
                ``batch_size``. ``None`` draws a seed from torch's global RNG.
            batch_size: images per forward pass.
            output: ``"uint8"`` -> ``(N, C, H, W) uint8 in [0, 255]``; ``"float"`` ->
                ``(N, C, H, W) float32 in [0, 1]``; ``"pil"`` -> a list of PIL images.
            device: where to run the network (default: where it is). Outputs are on that
                device, except ``"pil"``.
            return_labels: also return the ``(N,)`` int64 labels used.

        Returns:
            The images, or ``(images, labels)`` with ``return_labels=True``.
        """
        if output not in OUTPUTS:
            raise GanaugConfigError(
                f"Unknown output '{output}'. Use one of: {', '.join(OUTPUTS)}."
                + did_you_mean(output, OUTPUTS)
            )
        if batch_size < 1:
            raise GanaugConfigError(f"batch_size must be >= 1, got {batch_size}.")
        label_idx = self.resolve_labels(labels, n_per_class)
        z = self.noise(len(label_idx), seed=seed, truncation=truncation)
        run_device = torch.device(device) if device is not None else self.device
        if run_device != self.device:
            self.to(run_device)
        dtype = next(self.net.parameters()).dtype
        chunks = []
        was_training = self.training
        self.eval()
        with torch.inference_mode():
            for start in range(0, len(label_idx), batch_size):
                zb = z[start:start + batch_size].to(run_device, dtype, non_blocking=True)
                yb = label_idx[start:start + batch_size].to(run_device, non_blocking=True)
                out = self.net(zb, yb)
                chunks.append(to_uint8(out) if output in ("uint8", "pil") else to_unit_float(out))
        self.train(was_training)
        images = torch.cat(chunks) if chunks else torch.empty(
            0, self.channels, self.image_size, self.image_size,
            dtype=torch.uint8 if output != "float" else torch.float32, device=run_device)
        if output == "pil":
            from torchvision.transforms.v2.functional import to_pil_image

            images = [to_pil_image(img) for img in images.cpu()]
        if return_labels:
            return images, label_idx.to(run_device) if output != "pil" else label_idx
        return images

    def extra_repr(self) -> str:
        return (f"arch={self.arch}, classes={self.num_classes}, size={self.image_size}, "
                f"channels={self.channels}, z_dim={self.z_dim}")

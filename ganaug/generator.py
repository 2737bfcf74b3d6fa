"""The loaded generator and its sampling API.

A :class:`Generator` wraps a registered generator network (see :mod:`ganaug.models.registry`)
together with the class names and the metadata of its model file. ``ganaug.load`` returns one;
the trainer samples its EMA copy through one, so in-memory and loaded models draw the same
images for the same seed.
"""

from __future__ import annotations

import copy
import itertools
import operator
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from ganaug._checks import check_int, check_label_sequence, check_seed, check_truncation
from ganaug._devices import DeviceLike, resolve_device
from ganaug._imaging import check_sample_memory, human_bytes, memory_shortfall
from ganaug.errors import GanaugConfigError, GanaugModelError, did_you_mean

__all__ = ["OUTPUTS", "Generator", "check_truncation", "to_uint8", "to_unit_float",
           "truncated_normal"]

OUTPUTS = ("uint8", "float", "pil")
def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Map generator output ``(N, C, H, W) float in [-1, 1]`` to ``uint8 in [0, 255]``."""
    return ((x.float() + 1.0) * 127.5).round_().clamp_(0, 255).to(torch.uint8)


def to_unit_float(x: torch.Tensor) -> torch.Tensor:
    """Map generator output in ``[-1, 1]`` to ``float32 in [0, 1]`` (clamped)."""
    return ((x.float() + 1.0) * 0.5).clamp_(0.0, 1.0)


def _check_output(output: str) -> None:
    if output not in OUTPUTS:
        raise GanaugConfigError(
            f"output must be one of {', '.join(OUTPUTS)}, got {output!r}."
            + did_you_mean(output, OUTPUTS)
        )


def _refuse_nonfinite_output(out: torch.Tensor, start: int) -> None:
    """Raise when the network drew NaN/Inf pixels (they would become black images)."""
    if out.device.type == "meta":  # shapes only (tests, dry runs): no values to check
        return
    finite = torch.isfinite(out).flatten(1).all(1)
    if not bool(finite.all()):
        first = start + int((~finite).nonzero()[0])
        raise GanaugModelError(
            f"The generator drew non-finite (NaN/Inf) pixels in {int((~finite).sum())} of "
            f"{len(out)} images (first: image {first}), which would pass as black images. Its "
            "weights are damaged or come from a diverged run; use the model of an earlier, "
            "finite checkpoint.")


def _forward(net: nn.Module, z: torch.Tensor, labels: torch.Tensor,
             batch_size: int) -> torch.Tensor:
    """``net(z, labels)``; a forward pass that runs out of memory is refused with the fix."""
    try:
        return net(z, labels)
    except RuntimeError as e:  # torch.OutOfMemoryError (CUDA) or the CPU allocator's ENOMEM
        if not (isinstance(e, getattr(torch, "OutOfMemoryError", ())) or
                "can't allocate memory" in str(e) or "out of memory" in str(e).lower()):
            raise
        raise GanaugConfigError(
            f"One forward pass of {len(labels):,} images (batch_size={batch_size:,}) ran out of "
            f"memory on {z.device}. Use a smaller batch_size, e.g. "
            f"{max(1, min(256, len(labels) // 4))}.") from None


def _weights_key(net: nn.Module) -> tuple | None:
    """Where and at which version every tensor of ``net`` is; ``None`` if torch cannot tell.

    An optimiser or EMA step, ``load_state_dict`` or ``.to()`` changes the key, so a copy made
    under an older key holds stale weights. Inference-mode tensors have no version counter.
    """
    try:
        return tuple((t.data_ptr(), t._version)
                     for t in itertools.chain(net.parameters(), net.buffers()))
    except RuntimeError:
        return None


def truncated_normal(n: int, z_dim: int, gen: torch.Generator,
                     truncation: float = 1.0) -> torch.Tensor:
    """``(n, z_dim)`` float32 standard normal noise drawn from ``gen`` (a CPU generator).

    With ``truncation`` t < 1, every component with ``|z| > t`` is replaced by a draw from the
    normal distribution restricted to ``[-t, t]`` (inverse CDF: exactly what resampling until
    ``|z| <= t`` gives, in one pass, so tiny t never loops). Components already inside keep
    their value, so a truncated image stays close to its untruncated twin.
    """
    t = check_truncation(truncation)
    z = torch.randn(n, z_dim, generator=gen)
    if t < 1.0:
        bad = z.abs() > t
        u = torch.rand(int(bad.sum()), generator=gen, dtype=torch.float64)
        lo = torch.special.ndtr(torch.tensor(-t, dtype=torch.float64))
        redraw = torch.special.ndtri(lo + u * (1.0 - 2.0 * lo))
        z[bad] = redraw.clamp_(-t, t).to(z.dtype)
    return z


class Generator(nn.Module):
    """A class-conditional generator ready to sample.

    Sampling on another device (``sample(..., device=)``) never moves the generator: it runs a
    copy of the network moved there, kept for the next call on that device and made again
    when the weights change. To sample on one device many times without a second copy of the
    weights, move the generator itself once with ``.to(device)``.

    Attributes:
        net: the registered generator network, ``net(z, labels) -> [-1, 1]`` images.
        classes: class names, index ``i`` is label ``i``.
        metadata: the model file's metadata document (empty for an unsaved model).
    """

    def __init__(self, net: nn.Module, *, classes: Sequence[str] | None = None,
                 metadata: dict[str, Any] | None = None, arch: str | None = None) -> None:
        """Wrap ``net``; the arguments are described in :class:`Generator`."""
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
        # (device, weights key, network copy) of the last run on a device other than its own
        self._device_copy: tuple[torch.device, tuple | None, nn.Module] | None = None
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

    @property
    def training_data(self) -> str | None:
        """The data spec the model was trained on (its file's ``training.data``), or None."""
        training = self.metadata.get("training")
        spec = training.get("data") if isinstance(training, dict) else None
        return spec if isinstance(spec, str) else None

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``(N, z_dim)`` noise and ``(N,)`` int64 labels to ``(N, C, H, W)`` float in [-1, 1]."""
        return self.net(z, labels)

    # -- where the network runs ------------------------------------------------------------
    def _net_on(self, device: torch.device) -> nn.Module:
        """The network on ``device``: itself where it lives, else a copy moved there.

        The copy is kept for the next call on that device (one device at a time) and made
        again when the network's weights changed since (a training or EMA step,
        ``load_state_dict``, ``.to()``), so it never runs stale weights. The generator itself
        never moves; move it once with ``.to(device)`` to drop the copy.
        """
        if device == self.device:
            return self.net
        key = _weights_key(self.net)
        cached = getattr(self, "_device_copy", None)
        if cached is None or cached[0] != device or key is None or cached[1] != key:
            self._device_copy = None  # free the old copy before making the new one
            cached = (device, key, copy.deepcopy(self.net).to(device))
            self._device_copy = cached
        return cached[2]

    def _apply(self, fn, *args, **kwargs):
        # .to() / .cuda() / .half() etc.: a copy made for the old weights is useless now.
        self._device_copy = None
        return super()._apply(fn, *args, **kwargs)

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state["_device_copy"] = None  # pickles and deep copies carry the weights once
        return state

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
        floating = (label.is_floating_point() if isinstance(label, torch.Tensor)
                    else isinstance(label, np.ndarray) and label.dtype.kind not in "iu")
        if isinstance(label, (bool, np.bool_)) or floating or not hasattr(label, "__index__"):
            raise GanaugConfigError(
                f"A label must be an int or a class name, got {label!r} "
                f"({type(label).__name__}). Use 0..{self.num_classes - 1} or one of: "
                f"{', '.join(self.classes)}."
            )
        index = operator.index(label)
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
        idx, n = self._label_list(labels, n_per_class)
        if n is None:
            return torch.tensor(idx, dtype=torch.int64)
        short = memory_shortfall(len(idx) * n, 8)
        if short is not None:
            raise GanaugConfigError(
                f"n_per_class={n:,} x {len(idx)} class(es) is {len(idx) * n:,} labels: "
                f"{human_bytes(short[0])}, but {human_bytes(short[1])} of memory is available. "
                f"Use n_per_class <= {short[2] // max(1, len(idx)):,}.")
        return torch.tensor(idx, dtype=torch.int64).repeat_interleave(n)

    def _label_list(self, labels: Any, n_per_class: Any) -> tuple[list[int], int | None]:
        """The checked class indices of ``labels`` and the checked ``n_per_class``."""
        if labels is None:
            if n_per_class is None:
                raise GanaugConfigError("Pass labels=... or n_per_class=... to sample().")
            idx = list(range(self.num_classes))
        elif isinstance(labels, np.ndarray) and labels.dtype.kind in "iu":
            idx = [self.class_index(v) for v in labels.reshape(-1).tolist()]
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
            idx = [self.class_index(v) for v in check_label_sequence(labels)]
        if n_per_class is None:
            return idx, None
        return idx, check_int("n_per_class", n_per_class, hint="Use e.g. n_per_class=8.")

    def _check_memory(self, n: int, *, output: str = "uint8", device: Any = None,
                      per_class: int | None = None, n_per_class: int | None = None) -> None:
        """Refuse ``n`` images (of ``per_class`` classes x ``n_per_class``) beyond memory."""
        if per_class:
            what = f"n_per_class={n_per_class:,} x {per_class} class(es)"
            fix = ("Use n_per_class <= {fits}, or draw in parts (a loop of sample() calls, "
                   "SyntheticDataset, or ganaug export).")
        else:
            what, fix = "", ("Draw at most {fits} images per call: split the labels into parts "
                             "(SyntheticDataset and ganaug export stream many images).")
        check_sample_memory(n, self.channels, self.image_size, self.z_dim, output=output,
                            device=device, what=what, fix=fix, divisor=per_class or 1)

    # -- sampling --------------------------------------------------------------------------
    def noise(self, n: int, *, seed: int | None = None, truncation: float = 1.0) -> torch.Tensor:
        """``(n, z_dim)`` float32 noise on the CPU, reproducible from ``seed``.

        ``truncation`` t < 1 resamples every component with ``|z| > t`` (the truncation
        trick: fewer, more typical images); t = 1 (the default) leaves z standard normal.
        """
        check_truncation(truncation)
        n = check_int("n", n, minimum=0, hint="n is the number of noise rows.")
        # the rows, then (truncated) a mask and float64 redraws of up to every component
        short = memory_shortfall(n, (4 if truncation == 1.0 else 21) * self.z_dim)
        if short is not None:
            raise GanaugConfigError(
                f"noise(n={n:,}) needs about {human_bytes(short[0])} of memory, but "
                f"{human_bytes(short[1])} is available. Use n <= {short[2]:,}, in parts.")
        if seed is None:
            seed = int(torch.randint(0, 2**62, (1,)).item())
        seed = check_seed("seed", seed)
        gen = torch.Generator().manual_seed(int(seed))
        return truncated_normal(n, self.z_dim, gen, truncation)

    def sample(self, labels=None, *, n_per_class: int | None = None, truncation: float = 1.0,
               seed: int | None = None, batch_size: int = 256, output: str = "uint8",
               device: DeviceLike = None, return_labels: bool = False):
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
            device: where to run the network: ``None`` (the default) where it is, ``"auto"``
                the best device here, or a named device. The generator itself does not move:
                another device runs a copy of the network, kept for the next call there. Outputs are on
                that device, except ``"pil"``.
            return_labels: also return the ``(N,)`` int64 labels used.

        Returns:
            The images, or ``(images, labels)`` with ``return_labels=True``.
        """
        _check_output(output)
        idx, n = self._label_list(labels, n_per_class)
        run_device = self.device if device is None else resolve_device(device)
        self._check_memory(len(idx) * (n or 1), output=output, device=run_device,
                           per_class=len(idx) if n else None, n_per_class=n)
        label_idx = torch.tensor(idx, dtype=torch.int64)  # labels may be a one-pass iterator
        label_idx = label_idx if n is None else label_idx.repeat_interleave(n)
        z = self.noise(len(label_idx), seed=seed, truncation=truncation)
        return self.generate(z, label_idx, batch_size=batch_size, output=output, device=device,
                             return_labels=return_labels)

    def generate(self, z: torch.Tensor, labels: torch.Tensor, *, batch_size: int = 256,
                 output: str = "uint8", device: DeviceLike = None,
                 return_labels: bool = False):
        """Run the network on given noise and labels, batched, under ``torch.inference_mode``.

        Args:
            z: ``(N, z_dim)`` float noise (any device; moved in batches).
            labels: ``(N,)`` int64 label indices, already checked (see :meth:`resolve_labels`).
            batch_size, output, device, return_labels: as in :meth:`sample`.

        Returns:
            As :meth:`sample`. Each image depends only on its own ``z`` row and label (the
            network runs in eval mode), so batching never changes the result.
        """
        _check_output(output)
        batch_size = check_int("batch_size", batch_size, hint="Use e.g. batch_size=256.")
        run_device = self.device if device is None else resolve_device(device)
        if isinstance(labels, torch.Tensor) and labels.ndim == 1:  # before reading them
            self._check_memory(len(labels), output=output, device=run_device)
        labels = self._check_label_tensor(labels)
        if z.ndim != 2 or z.shape[1] != self.z_dim or z.shape[0] != len(labels):
            raise GanaugConfigError(
                f"z must be (N, {self.z_dim}) with N = len(labels) = {len(labels)}, "
                f"got {tuple(z.shape)}.")
        net = self._net_on(run_device)
        dtype = next(net.parameters()).dtype
        chunks = []
        was_training = self.training
        self.eval()
        net.eval()
        with torch.inference_mode():
            for start in range(0, len(labels), batch_size):
                zb = z[start:start + batch_size].to(run_device, dtype, non_blocking=True)
                yb = labels[start:start + batch_size].to(run_device, non_blocking=True)
                out = _forward(net, zb, yb, batch_size)
                _refuse_nonfinite_output(out, start)
                chunks.append(to_uint8(out) if output in ("uint8", "pil") else to_unit_float(out))
        self.train(was_training)
        images = torch.cat(chunks) if chunks else torch.empty(
            0, self.channels, self.image_size, self.image_size,
            dtype=torch.uint8 if output != "float" else torch.float32, device=run_device)
        if output == "pil":
            from torchvision.transforms.v2.functional import to_pil_image

            images = [to_pil_image(img) for img in images.cpu()]
        if return_labels:
            return images, labels.to(run_device) if output != "pil" else labels.cpu()
        return images

    def _check_label_tensor(self, labels: Any) -> torch.Tensor:
        """``labels`` of :meth:`generate`: a 1-D integer tensor of class indices in range."""
        if not isinstance(labels, torch.Tensor) or labels.ndim != 1 or \
                labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
            got = (f"{tuple(labels.shape)} {labels.dtype}" if isinstance(labels, torch.Tensor)
                   else type(labels).__name__)
            raise GanaugConfigError(f"labels must be a 1-D integer tensor of class indices, got "
                                    f"{got}; resolve_labels() makes one from names or ints.")
        if labels.numel():
            low, high = int(labels.min()), int(labels.max())
            if low < 0 or high >= self.num_classes:
                raise GanaugConfigError(
                    f"labels must be class indices in 0..{self.num_classes - 1}, got "
                    f"{low}..{high}.")
        return labels.long()

    def extra_repr(self) -> str:
        return (f"arch={self.arch}, classes={self.num_classes}, size={self.image_size}, "
                f"channels={self.channels}, z_dim={self.z_dim}")

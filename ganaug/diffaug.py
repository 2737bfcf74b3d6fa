"""DiffAugment: differentiable batch augmentation applied to real and fake images before D.

Ops follow the reference implementation of Zhao et al. 2020 (https://arxiv.org/abs/2006.10738,
mit-han-lab/data-efficient-gans): ``color`` = random brightness, saturation and contrast;
``translation`` = integer shift of up to 1/8 of the side with zero padding; ``cutout`` = one
zeroed square of half the side. Each op hits a sample with probability ``p``, which
:class:`AdaptiveAugment` can tune with the ADA heuristic (Karras et al. 2020,
https://arxiv.org/abs/2006.06676). Randomness comes from the global torch RNG with the input's
dtype and device, so ``torch.manual_seed`` (or restored RNG states) makes it repeatable.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from ganaug.errors import GanaugConfigError, did_you_mean

POLICIES = ("color", "translation", "cutout")


def _rand(x: torch.Tensor) -> torch.Tensor:
    """(N, 1, 1, 1) uniform [0, 1) numbers with ``x``'s dtype and device."""
    return torch.rand(x.shape[0], 1, 1, 1, dtype=x.dtype, device=x.device)


def _color(x: torch.Tensor) -> torch.Tensor:
    # Brightness +U[-0.5, 0.5), saturation *U[0, 2), contrast *U[0.5, 1.5), as in the reference.
    x = x + (_rand(x) - 0.5)
    mean = x.mean(dim=1, keepdim=True)  # grey images: x == mean, so saturation is a no-op
    x = (x - mean) * (_rand(x) * 2.0) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_rand(x) + 0.5) + mean


def _translation(x: torch.Tensor, ratio: float = 0.125, *, edge: bool = False) -> torch.Tensor:
    """Shift each image by up to ``ratio`` of its size; what enters is zero (DiffAugment), or
    with ``edge`` the nearest edge pixel (no value the image lacks)."""
    n, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ty = torch.randint(-sh, sh + 1, (n, 1, 1), device=x.device)
    tx = torch.randint(-sw, sw + 1, (n, 1, 1), device=x.device)
    # Index into a 1-pixel border (zeros, or the edge itself); clamping sends every
    # out-of-image read to that border.
    rows = (torch.arange(h, device=x.device).view(1, h, 1) + ty + 1).clamp(0, h + 1)
    cols = (torch.arange(w, device=x.device).view(1, 1, w) + tx + 1).clamp(0, w + 1)
    batch = torch.arange(n, device=x.device).view(n, 1, 1)
    padded = F.pad(x, [1, 1, 1, 1], mode="replicate" if edge else "constant")
    return padded[batch, :, rows, cols].permute(0, 3, 1, 2)  # (N, H, W, C) -> (N, C, H, W)


def cr_shift(x: torch.Tensor) -> torch.Tensor:
    """The augmentation ``T`` of balanced consistency regularisation (``cr_weight``): every image
    shifted by up to 1/8 of its size (bCR's CIFAR setting: 4 of 32 px), the edge pixels filling
    what enters. T must keep the class and the image statistics: no cutout (a hidden stroke
    changes a digit; with one, cr_weight 10 made D class-blind), no zero border (G learnt to
    draw the grey frame D was taught to ignore), no flip (it changes digits and text) and no
    colour (some classes are their colour)."""
    return _translation(x, edge=True)


def _cutout(x: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    oy = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), device=x.device) - ch // 2
    ox = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), device=x.device) - cw // 2
    ys = torch.arange(h, device=x.device).view(1, h, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, w)
    hole = (ys >= oy) & (ys < oy + ch) & (xs >= ox) & (xs < ox + cw)
    return x * (~hole).unsqueeze(1).to(x.dtype)


_OPS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "color": _color, "translation": _translation, "cutout": _cutout,
}


def parse_policy(policy: str | Sequence[str] | None) -> tuple[str, ...]:
    """Normalise a policy to a tuple of op names, in the given order.

    Args:
        policy: ``"color,translation,cutout"``, a sequence of names, or ``None``/``""``/``"none"``
            for no augmentation. Names are case-insensitive; blanks are ignored.

    Returns:
        The op names, e.g. ``("color", "translation")``; ``()`` for none.

    Raises:
        GanaugConfigError: an unknown name (the message lists :data:`POLICIES`), a name given
            twice, or ``none`` among names.
    """
    if policy is None:
        return ()
    parts = policy.split(",") if isinstance(policy, str) else list(policy)
    names = tuple(str(p).strip().lower() for p in parts if str(p).strip())
    if names in ((), ("none",)):
        return ()
    if "none" in names:
        raise GanaugConfigError(
            f"DiffAugment policy {policy!r}: 'none' cannot be combined with ops; give 'none' "
            f"alone, or ops from {', '.join(POLICIES)}.")
    for name in names:
        if names.count(name) > 1:
            raise GanaugConfigError(
                f"DiffAugment policy {policy!r} names {name!r} twice; name each op once (a "
                "repeated op would be applied again, e.g. a double shift).")
        if name not in POLICIES:
            raise GanaugConfigError(
                f"Unknown DiffAugment policy '{name}' in {policy!r}. Valid names: "
                f"{', '.join(POLICIES)} (comma-separated), or 'none'." + did_you_mean(name, POLICIES)
            )
    return names


def diff_augment(x: torch.Tensor, policy: str | Sequence[str] | None, p: float = 1.0) -> torch.Tensor:
    """Apply the DiffAugment ``policy`` to a batch, differentiably.

    Args:
        x: (N, C, H, W) float images in [-1, 1], C = 1 or 3 (channels_last is fine).
        policy: see :func:`parse_policy`.
        p: probability in [0, 1] that each op is applied to each sample (drawn per op, per sample).

    Returns:
        (N, C, H, W) tensor of ``x``'s dtype; ``x`` itself when ``p == 0`` or the policy is empty.
        Colour ops may leave [-1, 1] (as in the reference); translation and cutout only move
        pixels or write zeros.

    Raises:
        GanaugConfigError: unknown policy name or ``p`` outside [0, 1].
    """
    names = parse_policy(policy)
    if not 0.0 <= p <= 1.0:
        raise GanaugConfigError(f"DiffAugment probability p must be in [0, 1], got {p!r}.")
    if p == 0.0 or not names:
        return x
    for name in names:
        augmented = _OPS[name](x)
        if p < 1.0:
            keep = torch.rand(x.shape[0], 1, 1, 1, device=x.device) >= p
            augmented = torch.where(keep, x, augmented)
        x = augmented
    return x


class AdaptiveAugment:
    """ADA's feedback loop for the augmentation probability ``p``.

    Every ``interval`` calls to :meth:`update`, the overfitting signal
    ``r_t = E[sign(D(real))]`` over those calls is compared with ``target`` and ``p`` moves by
    ``sign(r_t - target) * images_seen / speed_images``, clamped to ``[0, max_p]``.

    Args:
        target: wanted r_t (ADA: 0.6).
        interval: calls between adjustments (ADA: every 4 minibatches).
        speed_images: images needed to move ``p`` from 0 to 1. ADA uses 500k; the default 50k
            suits our short CPU runs (batch 64: about 800 steps from 0 to 1).
        p: starting probability.
        max_p: upper bound of ``p`` (1.0: DiffAugment ops are applied to real and fake alike).

    Raises:
        GanaugConfigError: any argument out of range.
    """

    def __init__(self, target: float = 0.6, interval: int = 4, speed_images: int = 50_000,
                 p: float = 0.0, max_p: float = 1.0) -> None:
        if not 0.0 < target < 1.0:
            raise GanaugConfigError(f"ADA target must be in (0, 1), got {target!r}; ADA uses 0.6.")
        if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
            raise GanaugConfigError(f"ADA interval must be an integer >= 1, got {interval!r}; try 4.")
        if not speed_images > 0:
            raise GanaugConfigError(
                f"ADA speed_images must be > 0, got {speed_images!r}; try 50000.")
        if not 0.0 <= max_p <= 1.0 or not 0.0 <= p <= max_p:
            raise GanaugConfigError(
                f"ADA needs 0 <= p <= max_p <= 1, got p={p!r}, max_p={max_p!r}.")
        self.target, self.interval, self.speed_images = float(target), interval, speed_images
        self.max_p, self.p = float(max_p), float(p)
        self.last_rt: float | None = None
        self._sign_sum, self._count, self._images, self._calls = 0.0, 0, 0, 0

    def update(self, logits_real: torch.Tensor, batch_size: int | None = None) -> float:
        """Accumulate one batch of real logits; adjust ``p`` every ``interval`` calls.

        Args:
            logits_real: (N,) discriminator logits on (augmented) real images.
            batch_size: images this step consumed (the global batch under DDP); defaults to N.

        Returns:
            The current ``p``.
        """
        signs = torch.sign(logits_real.detach().float())
        self._sign_sum += float(signs.sum())
        self._count += signs.numel()
        self._images += int(batch_size if batch_size is not None else signs.numel())
        self._calls += 1
        if self._calls >= self.interval and self._count > 0:
            self.last_rt = self._sign_sum / self._count
            step = self._images / self.speed_images
            direction = (self.last_rt > self.target) - (self.last_rt < self.target)
            self.p = min(max(self.p + direction * step, 0.0), self.max_p)
            self._sign_sum, self._count, self._images, self._calls = 0.0, 0, 0, 0
        return self.p

    def state_dict(self) -> dict[str, Any]:
        """Settings, ``p``, ``last_rt`` and the partial accumulators (plain Python values)."""
        return {"target": self.target, "interval": self.interval,
                "speed_images": self.speed_images, "max_p": self.max_p, "p": self.p,
                "last_rt": self.last_rt, "sign_sum": self._sign_sum, "count": self._count,
                "images": self._images, "calls": self._calls}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        self.target, self.interval = float(state["target"]), int(state["interval"])
        self.speed_images, self.max_p = state["speed_images"], float(state["max_p"])
        self.p = float(state["p"])
        self.last_rt = None if state["last_rt"] is None else float(state["last_rt"])
        self._sign_sum, self._count = float(state["sign_sum"]), int(state["count"])
        self._images, self._calls = int(state["images"]), int(state["calls"])

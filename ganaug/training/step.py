"""The GAN maths of one generator step: :class:`GANStep`.

One generator step = ``d_steps`` discriminator steps on real batches and fresh fakes, then one
generator step, then the EMA update of the generator's copy. DiffAugment (Zhao et al. 2020,
https://arxiv.org/abs/2006.10738) is applied to real and fake images before D in both steps. Balanced consistency
regularisation (bCR, Zhao et al. 2021, https://arxiv.org/abs/2002.04724) compares, in the D step,
D's logits on the images it sees with its logits on a second, independent view ``T(x)``.
Losses stay on the device: nothing here forces a host sync.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ganaug._devices import DeviceLike, resolve_device
from ganaug.config import TrainConfig
from ganaug.diffaug import AdaptiveAugment, cr_shift, diff_augment, parse_policy
from ganaug.errors import GanaugConfigError, did_you_mean
from ganaug.generator import Generator
from ganaug.losses import (
    LeCamEMA,
    consistency_reg,
    get_loss,
    gradient_penalty,
    lecam_reg,
    r1_penalty,
)
from ganaug.models import (
    arch_defaults,
    build_discriminator,
    build_generator,
    disc_defaults,
    estimate_parameters,
)
from ganaug.models.layers import count_parameters, to_channels_last
from ganaug.training import distributed
from ganaug.training.distributed import DistInfo

GP_WEIGHT = 10.0  # WGAN-GP's lambda (Gulrajani et al. 2017)
NO_STEP = 2**62  # "no non-finite loss seen yet" in the first-bad-step trackers
_USED_FIELDS = ("arch", "arch_kwargs", "image_size", "channels", "z_dim", "seed", "batch_size",
                "lr_g", "lr_d", "betas", "loss", "r1_gamma", "lecam_weight", "cr_weight",
                "diffaug", "ada",
                "ada_target", "ema_decay", "ema_start", "amp", "channels_last", "compile")


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """``ema = decay * ema + (1 - decay) * model`` for parameters; buffers (BN stats) copied."""
    for p_ema, p in zip(ema.parameters(), model.parameters()):
        p_ema.lerp_(p.detach(), 1.0 - decay)
    for b_ema, b in zip(ema.buffers(), model.buffers()):
        b_ema.copy_(b)


def ema_decay_at(step: int, decay: float, start: int) -> float:
    """Decay used after generator step ``step``: 0 (copy) until ``start``, then a warm-up
    ``min(decay, (1 + k) / (10 + k))`` with ``k = step - start`` (as TF's moving averages), so
    short runs do not average in their first, untrained weights."""
    if step <= start:
        return 0.0
    k = step - start
    return min(decay, (1.0 + k) / (10.0 + k))


def split_arch_kwargs(arch: str, arch_kwargs: dict[str, Any]) -> tuple[dict, dict]:
    """Route ``arch_kwargs`` to the generator and/or discriminator that accept each key.

    A key both accept (``width``) goes to both; ``d_width`` sets the discriminator's ``width``
    alone (a wider D than G).

    Raises:
        GanaugConfigError: a key neither network accepts.
    """
    g_keys, d_keys = set(arch_defaults(arch)), set(disc_defaults(arch))
    known = g_keys | d_keys | ({"d_width"} if "width" in d_keys else set())
    unknown = sorted(set(arch_kwargs) - known)
    if unknown:
        raise GanaugConfigError(
            f"arch_kwargs {unknown} are not arguments of arch '{arch}'; it accepts "
            f"{', '.join(sorted(known))}." + did_you_mean(unknown[0], known))
    d_kwargs = {k: v for k, v in arch_kwargs.items() if k in d_keys}
    if "d_width" in arch_kwargs:
        d_kwargs["width"] = arch_kwargs["d_width"]
    return {k: v for k, v in arch_kwargs.items() if k in g_keys}, d_kwargs


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX): there autocast makes a
    dcgan step 1.3-1.5x faster; elsewhere oneDNN emulates bf16, which is slower than fp32."""
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except (AttributeError, RuntimeError):  # private helpers: absent in another torch
        return False


def amp_settings(device: torch.device, amp: bool) -> tuple[bool, torch.dtype | None, bool]:
    """``(autocast on, dtype, use GradScaler)``: on CUDA bf16 where supported, else fp16 + scaler;
    on a CPU with native bf16, bf16; otherwise (another CPU, MPS) off."""
    if not amp:
        return False, None, False
    if device.type == "cpu":
        return (True, torch.bfloat16, False) if cpu_has_native_bf16() else (False, None, False)
    if device.type != "cuda":
        return False, None, False
    if torch.cuda.is_bf16_supported():
        return True, torch.bfloat16, False
    return True, torch.float16, True


class GANStep:
    """G, D, the EMA copy of G, their optimisers, AMP, losses, DiffAugment/ADA, LeCam, R1, bCR.

    Args:
        cfg: a resolved :class:`TrainConfig` (every field set, as
            :func:`ganaug.config.resolve_config` returns it; ``image_size`` and ``channels``
            are the data's).
        classes: the class names; their count is the number of classes.
        device: where the networks live (``None``: the best available).
        dist: this process's place in a DDP run (default: one process).

    The initial weights are a function of ``cfg.seed`` alone (equal on every rank). After
    building, ``generator`` is the EMA copy wrapped in :class:`ganaug.Generator`.

    Raises:
        GanaugConfigError: an unresolved config, or arch settings the arch cannot build.
    """

    def __init__(self, cfg: TrainConfig, classes: Sequence[str], *, device: DeviceLike = None,
                 dist: DistInfo | None = None) -> None:
        unset = [name for name in _USED_FIELDS if getattr(cfg, name) is None]
        if unset:
            raise GanaugConfigError(
                f"GANStep needs a resolved TrainConfig; {', '.join(unset)} are not set. Pass "
                "the config through ganaug.config.resolve_config first.")
        self.cfg, self.dist = cfg, dist or DistInfo()
        self.device = dev = resolve_device(device)
        self.num_classes = len(classes)
        g_kw, d_kw = split_arch_kwargs(cfg.arch, cfg.arch_kwargs)
        shape = {"num_classes": self.num_classes, "channels": cfg.channels,
                 "image_size": cfg.image_size}
        # Count on the meta device first: an absurd width or class count is refused, not allocated.
        estimate_parameters(cfg.arch, z_dim=cfg.z_dim, disc_kwargs=d_kw, where="this run",
                            **shape, **g_kw)
        torch.manual_seed(cfg.seed)  # equal initial weights on every rank
        self.G = build_generator(cfg.arch, z_dim=cfg.z_dim, **shape, **g_kw).to(dev)
        self.D = build_discriminator(cfg.arch, **shape, **d_kw).to(dev)
        if cfg.channels_last:
            to_channels_last(self.G)
            to_channels_last(self.D)
        self.G_ema = copy.deepcopy(self.G).requires_grad_(False).eval()
        self.generator = Generator(self.G_ema, classes=list(classes), arch=cfg.arch)

        g_fwd = distributed.wrap_ddp(self.G, self.dist, dev)
        d_fwd, d_raw = distributed.wrap_ddp(self.D, self.dist, dev), self.D
        if cfg.compile:
            g_fwd, d_fwd, d_raw = torch.compile(g_fwd), torch.compile(d_fwd), torch.compile(d_raw)
        self._g_fwd, self._d_fwd, self._d_raw = g_fwd, d_fwd, d_raw

        fused = {"fused": True} if dev.type == "cuda" else {"foreach": True}
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=cfg.lr_g, betas=cfg.betas, **fused)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=cfg.lr_d, betas=cfg.betas, **fused)
        self.autocast, self.amp_dtype, use_scaler = amp_settings(dev, cfg.amp)
        self.scaler_g = torch.amp.GradScaler(dev.type, enabled=use_scaler)
        self.scaler_d = torch.amp.GradScaler(dev.type, enabled=use_scaler)

        self.d_loss_fn, self.g_loss_fn = get_loss(cfg.loss)
        self.policy = parse_policy(cfg.diffaug)
        self.ada = AdaptiveAugment(target=cfg.ada_target) if cfg.ada else None
        self.lecam = LeCamEMA() if cfg.lecam_weight > 0 else None
        self._bad_d = torch.full((), NO_STEP, dtype=torch.int64, device=dev)
        self._bad_g = torch.full((), NO_STEP, dtype=torch.int64, device=dev)

    def describe(self) -> str:
        """One line: parameter counts, arch, classes, image shape and device."""
        cfg = self.cfg
        return (f"parameters: G {count_parameters(self.G):,}  D {count_parameters(self.D):,}"
                f"  ({cfg.arch}, {self.num_classes} classes, {cfg.image_size}x"
                f"{cfg.image_size}x{cfg.channels}, device {self.device})")

    # -- one generator step -------------------------------------------------------------------
    def step(self, batches: Sequence[tuple[torch.Tensor, torch.Tensor]], *,
             step: int) -> dict[str, torch.Tensor]:
        """One D step per real batch, one G step, then the EMA update.

        Args:
            batches: ``d_steps`` pairs ``(real (B, C, H, W) float in [-1, 1], labels (B,))``.
            step: the number of this generator step (1 for the first): it sets the EMA decay
                and is recorded when a loss is not finite.

        Returns:
            ``loss_d``, ``loss_g``, ``d_real``, ``d_fake`` (the last D step's mean logits) as
            0-d device tensors.
        """
        for real, labels in batches:
            loss_d, d_real, d_fake = self.d_step(real, labels, step=step)
        loss_g = self.g_step(step=step)
        ema_update(self.G_ema, self.G, ema_decay_at(step, self.cfg.ema_decay, self.cfg.ema_start))
        return {"loss_d": loss_d, "loss_g": loss_g, "d_real": d_real, "d_fake": d_fake}

    def d_step(self, real: torch.Tensor, labels: torch.Tensor, *,
               step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One discriminator step on ``real`` and fresh fakes: ``(loss, mean real logit,
        mean fake logit)``."""
        cfg = self.cfg
        n = real.shape[0]
        # WGAN-GP interpolates real and fake of the same class, so fakes reuse the real labels.
        z, fake_labels = self.noise(n, labels.clone() if cfg.loss == "wgan-gp" else None)
        with torch.no_grad(), self._autocast():
            fake = self.G(z, fake_labels)
        real_aug, fake_aug = self.augment(real), self.augment(fake)
        if cfg.r1_gamma > 0:
            real_aug = real_aug.detach().requires_grad_(True)
        inputs, input_labels = [real_aug, fake_aug], [labels, fake_labels]
        if cfg.cr_weight > 0:
            # bCR's second view: T applied to the view D scores, so D is asked to ignore a
            # shift only, never a second cutout (that made D class-blind: docs/training.md).
            inputs += [self.cr_augment(real_aug.detach()), self.cr_augment(fake_aug)]
            input_labels += [labels, fake_labels]
        self.opt_d.zero_grad(set_to_none=True)
        with self._autocast():
            # One D forward on [real; fake (; T(real); T(fake))]: one DDP all-reduce per backward.
            logits = self._d_fwd(torch.cat(inputs), torch.cat(input_labels)).float()
            logits_real, logits_fake = logits[:n], logits[n:2 * n]
            loss_d = self.d_loss_fn(logits_real, logits_fake)
            if cfg.r1_gamma > 0:
                loss_d = loss_d + 0.5 * cfg.r1_gamma * r1_penalty(logits_real, real_aug)
            if cfg.loss == "wgan-gp":
                loss_d = loss_d + GP_WEIGHT * gradient_penalty(self._d_raw, real_aug, fake_aug,
                                                               labels)
            if self.lecam is not None:
                loss_d = loss_d + cfg.lecam_weight * lecam_reg(
                    logits_real, logits_fake, self.lecam.real, self.lecam.fake)
            if cfg.cr_weight > 0:
                loss_d = loss_d + cfg.cr_weight * (
                    consistency_reg(logits_real, logits[2 * n:3 * n])
                    + consistency_reg(logits_fake, logits[3 * n:]))
        self.scaler_d.scale(loss_d).backward()
        self.scaler_d.step(self.opt_d)
        self.scaler_d.update()
        if self.lecam is not None:
            self.lecam.update(logits_real, logits_fake)
        if self.ada is not None:
            p = self.ada.update(logits_real, n * self.dist.world)
            self.ada.p = distributed.broadcast_float(self.dist, p, self.device)
        self._note_bad(self._bad_d, loss_d, step)
        return loss_d.detach(), logits_real.detach().mean(), logits_fake.detach().mean()

    def g_step(self, *, step: int) -> torch.Tensor:
        """One generator step on a fresh batch of fakes: its loss."""
        z, fake_labels = self.noise(self.cfg.batch_size)
        self.D.requires_grad_(False)  # D's weight grads are not needed for G's step
        self.opt_g.zero_grad(set_to_none=True)
        with self._autocast():
            fake = self._g_fwd(z, fake_labels)
            loss_g = self.g_loss_fn(self._d_raw(self.augment(fake), fake_labels).float())
        self.scaler_g.scale(loss_g).backward()
        self.scaler_g.step(self.opt_g)
        self.scaler_g.update()
        self.D.requires_grad_(True)
        self._note_bad(self._bad_g, loss_g, step)
        return loss_g.detach()

    def noise(self, n: int, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(z (n, z_dim), labels (n,))``; uniform random labels unless given."""
        z = torch.randn(n, self.cfg.z_dim, device=self.device)
        if labels is None:
            labels = torch.randint(0, self.num_classes, (n,), device=self.device)
        return z, labels

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        """DiffAugment with the run's policy (each op with ADA's probability when ADA is on)."""
        return diff_augment(x, self.policy, p=self.ada.p if self.ada else 1.0)

    @staticmethod
    def cr_augment(x: torch.Tensor) -> torch.Tensor:
        """bCR's ``T``: :func:`ganaug.diffaug.cr_shift` (a shift filled from the edges)."""
        return cr_shift(x)

    def _autocast(self):
        if not self.autocast:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _note_bad(self, tracker: torch.Tensor, loss: torch.Tensor, step: int) -> None:
        # No host sync: remember the first step whose loss was not finite.
        here = torch.where(torch.isfinite(loss.detach()), NO_STEP, step)
        torch.minimum(tracker, here.to(tracker.dtype), out=tracker)

    def first_bad_steps(self) -> torch.Tensor:
        """``(2,)`` int64 on the device: the first generator step whose D (then G) loss was not
        finite, ``NO_STEP`` where none was."""
        return torch.stack([self._bad_d, self._bad_g])

    # -- state --------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Networks, EMA, optimisers, grad scalers, ADA and LeCam (tensors and plain types)."""
        return {"G": self.G.state_dict(), "D": self.D.state_dict(),
                "G_ema": self.G_ema.state_dict(), "opt_g": self.opt_g.state_dict(),
                "opt_d": self.opt_d.state_dict(), "scaler_g": self.scaler_g.state_dict(),
                "scaler_d": self.scaler_d.state_dict(),
                "ada": self.ada.state_dict() if self.ada else None,
                "lecam": self.lecam.state_dict() if self.lecam else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (optimiser state moves to the parameters' device)."""
        for name in ("G", "D", "G_ema", "opt_g", "opt_d", "scaler_g", "scaler_d"):
            getattr(self, name).load_state_dict(state[name])
        if self.ada and state.get("ada"):
            self.ada.load_state_dict(state["ada"])
        if self.lecam and state.get("lecam"):
            self.lecam.load_state_dict(state["lecam"])


__all__ = ["GANStep", "amp_settings", "cpu_has_native_bf16", "ema_decay_at", "ema_update", "split_arch_kwargs"]

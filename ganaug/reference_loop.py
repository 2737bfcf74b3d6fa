"""The baseline of ``ganaug bench train``: :class:`ReferenceLoop`, a plain PyTorch GAN loop, and
:func:`make_trainer`, the :class:`~ganaug.training.Trainer` it is timed against, on
:func:`synthetic_data`. Split from :mod:`ganaug.bench` (which re-exports all three); see
docs/performance.md.
"""

from __future__ import annotations

import contextlib
import copy
import io

import torch

from ganaug.config import TrainConfig
from ganaug.data import LabeledImages
from ganaug.losses import get_loss
from ganaug.training import Trainer, ema_decay_at

NUM_CLASSES = 10  # synthetic data of bench train/sample: CIFAR-10's class count


def synthetic_data(*, num_classes: int = NUM_CLASSES, channels: int = 3, image_size: int = 32,
                   num_images: int = 512, seed: int = 0):
    """Random uint8 :class:`~ganaug.data.LabeledImages` (speed does not depend on content)."""
    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (num_images, channels, image_size, image_size),
                           dtype=torch.uint8, generator=gen)
    labels = torch.arange(num_images) % num_classes
    return LabeledImages(images, labels, [f"class{k}" for k in range(num_classes)],
                         source="bench: random uint8", spec="")


def make_trainer(*, arch: str = "dcgan", image_size: int = 32, batch_size: int = 64,
                 channels: int = 3, device: str | None = None, width: int | None = None,
                 channels_last: bool = False, amp: bool = False, compile: bool = False,
                 num_images: int | None = None, cr_weight: float = 0.0) -> Trainer:
    """A :class:`~ganaug.training.Trainer` set up (``setup()``) for benchmarking its real step.

    The config asks for the same work as :class:`ReferenceLoop`: hinge loss, no DiffAugment,
    no ADA/R1/LeCam, no bCR unless ``cr_weight > 0`` (then the Trainer does the extra work and
    the ratio shows its cost); EMA stays on (the Trainer always keeps one, and so does the
    reference).
    Nothing is written: ``setup`` builds the run without a run folder.
    """
    n = num_images or max(4 * batch_size, 64)
    data = synthetic_data(image_size=image_size, num_images=n, channels=channels)
    cfg = TrainConfig(data="bench", arch=arch, batch_size=batch_size, loss="hinge",
                      diffaug="none", ada=False, r1_gamma=0.0, lecam_weight=0.0, seed=0,
                      cr_weight=cr_weight,
                      device=device, amp=amp, channels_last=channels_last,
                      compile=compile, arch_kwargs={"width": width} if width else None)
    trainer = Trainer(cfg, data=data)
    with contextlib.redirect_stdout(io.StringIO()):  # the preset and parameter lines
        trainer.setup()
    return trainer


class ReferenceLoop:
    """The minimal hand-written PyTorch loop that does the Trainer's work and nothing more.

    Per generator step: ``d_steps`` times (slice a real uint8 batch, scale to [-1, 1], fakes
    under ``no_grad``, one D forward on real and fake, hinge loss, ``zero_grad()``, backward,
    Adam step), then a G step (fresh noise, hinge loss through D, backward, Adam step), then
    the EMA update of G's copy. Adam is PyTorch's default implementation (no ``foreach`` /
    ``fused`` argument); D's weight gradients are computed in the G step, as in most plain loops.
    With AMP on, the loop autocasts like the Trainer (bf16, or fp16 with a GradScaler); its
    networks are copies of the Trainer's, so channels_last carries over; it is never compiled.

    Args:
        trainer: a prepared Trainer whose config, data and initial weights are copied.
    """

    def __init__(self, trainer: Trainer) -> None:
        cfg = trainer.cfg
        self.device = trainer.device
        self.G = copy.deepcopy(trainer.gan.G)
        self.D = copy.deepcopy(trainer.gan.D)
        self.G_ema = copy.deepcopy(self.G).requires_grad_(False).eval()
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=cfg.lr_g, betas=cfg.betas)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=cfg.lr_d, betas=cfg.betas)
        self.d_loss, self.g_loss = get_loss("hinge")
        self.images, self.labels = trainer.batches.images, trainer.batches.labels
        self.batch_size, self.d_steps, self.z_dim = cfg.batch_size, cfg.d_steps, cfg.z_dim
        self.num_classes = trainer.data.num_classes
        self.ema_decay, self.ema_start, self._decay_at = cfg.ema_decay, cfg.ema_start, ema_decay_at
        self.step_count = 0
        gan = trainer.gan
        self._autocast = (lambda: torch.autocast(self.device.type, dtype=gan.amp_dtype)) \
            if gan.autocast else contextlib.nullcontext
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=gan.scaler_d.is_enabled())
        self._perm, self._pos = torch.randperm(len(self.labels)), 0

    def _real_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._pos + self.batch_size > len(self._perm):
            self._perm, self._pos = torch.randperm(len(self.labels)), 0
        idx = self._perm[self._pos:self._pos + self.batch_size].to(self.images.device)
        self._pos += self.batch_size
        real = self.images[idx].to(self.device).float() / 127.5 - 1.0
        return real, self.labels[idx].to(self.device)

    def step(self) -> None:
        """One generator step (after ``d_steps`` discriminator steps) and the EMA update."""
        n, dev = self.batch_size, self.device
        for _ in range(self.d_steps):
            real, labels = self._real_batch()
            z = torch.randn(n, self.z_dim, device=dev)
            fake_labels = torch.randint(0, self.num_classes, (n,), device=dev)
            with torch.no_grad(), self._autocast():
                fake = self.G(z, fake_labels)
            with self._autocast():
                logits = self.D(torch.cat([real, fake]), torch.cat([labels, fake_labels])).float()
                loss_d = self.d_loss(logits[:n], logits[n:])
            self.opt_d.zero_grad()
            self.scaler.scale(loss_d).backward()
            self.scaler.step(self.opt_d)
            self.scaler.update()
        z = torch.randn(n, self.z_dim, device=dev)
        fake_labels = torch.randint(0, self.num_classes, (n,), device=dev)
        with self._autocast():
            loss_g = self.g_loss(self.D(self.G(z, fake_labels), fake_labels).float())
        self.opt_g.zero_grad()
        self.scaler.scale(loss_g).backward()
        self.scaler.step(self.opt_g)
        self.scaler.update()
        self.step_count += 1
        decay = self._decay_at(self.step_count, self.ema_decay, self.ema_start)
        with torch.no_grad():
            for p_ema, p in zip(self.G_ema.parameters(), self.G.parameters()):
                p_ema.lerp_(p, 1.0 - decay)
            for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers()):
                b_ema.copy_(b)


__all__ = ["NUM_CLASSES", "ReferenceLoop", "make_trainer", "synthetic_data"]

"""The class-conditional GAN training loop: ``Trainer(cfg).fit()``.

One generator step = ``d_steps`` discriminator steps on real batches and fresh fakes, then one
generator step; DiffAugment (Zhao et al. 2020, https://arxiv.org/abs/2006.10738) is applied to
real and fake images before D in both. The generator's EMA copy makes the samples and the saved
model. Runs are exactly resumable on the CPU: the data order is a function of the step counter
and every RNG state is checkpointed. See docs/training.md for the objective and the options.
"""

from __future__ import annotations

import contextlib
import copy
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ganaug import _distributed as D_
from ganaug._distributed import BatchOrder, RealBatches
from ganaug.checkpoint import (
    append_metrics,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
    trim_metrics,
    write_loss_plot,
    write_samples,
)
from ganaug.config import (
    TrainConfig,
    arch_differences,
    data_name,
    merge_saved,
    read_yaml,
    resolve_config,
)
from ganaug.errors import GanaugConfigError, GanaugDataError, GanaugTrainingError

GP_WEIGHT = 10.0  # WGAN-GP's lambda (Gulrajani et al. 2017)
SAMPLE_PER_CLASS = 8
_NO_STEP = 2**62  # "no non-finite loss seen yet" in the first-bad-step trackers


# -- small pieces ---------------------------------------------------------------------------------
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

    Raises:
        GanaugConfigError: a key neither network accepts.
    """
    from ganaug.models import arch_defaults, disc_defaults

    g_keys, d_keys = set(arch_defaults(arch)), set(disc_defaults(arch))
    unknown = sorted(set(arch_kwargs) - g_keys - d_keys)
    if unknown:
        from ganaug.errors import did_you_mean

        raise GanaugConfigError(
            f"arch_kwargs {unknown} are not arguments of arch '{arch}'; it accepts "
            f"{', '.join(sorted(g_keys | d_keys))}." + did_you_mean(unknown[0], g_keys | d_keys))
    return ({k: v for k, v in arch_kwargs.items() if k in g_keys},
            {k: v for k, v in arch_kwargs.items() if k in d_keys})


def _amp_settings(device: torch.device, amp: bool) -> tuple[bool, torch.dtype | None, bool]:
    """``(autocast on, dtype, use GradScaler)``: bf16 where supported, else fp16 + scaler."""
    if not amp or device.type != "cuda":
        return False, None, False
    if torch.cuda.is_bf16_supported():
        return True, torch.bfloat16, False
    return True, torch.float16, True


# -- the trainer ----------------------------------------------------------------------------------
class Trainer:
    """Train a class-conditional GAN as configured.

    Args:
        cfg: the run's :class:`TrainConfig` (``None`` fields are resolved from the preset).
        data: optional already-loaded ``LabeledImages`` (default: ``load_data(cfg.data, ...)``).
        hooks: callables ``hook(trainer, step)`` run after every completed generator step
            (on every rank). Raising ``KeyboardInterrupt`` there stops the run cleanly.

    After :meth:`fit`, ``trainer.generator`` is the EMA generator wrapped in
    :class:`ganaug.Generator` and ``trainer.cfg`` the resolved config.
    """

    def __init__(self, cfg: TrainConfig, *, data=None,
                 hooks: list[Callable[[Trainer, int], None]] | None = None) -> None:
        if not isinstance(cfg, TrainConfig):
            raise GanaugConfigError(f"Trainer needs a TrainConfig, got {type(cfg).__name__}.")
        self.user_cfg = cfg
        self.data = data
        self.hooks = list(hooks or [])
        self.step = 0
        self._stop_reason: str | None = None
        self._in_step = False

    # -- public ----------------------------------------------------------------------------
    def fit(self) -> dict[str, Any]:
        """Run (or resume) training up to ``cfg.steps`` generator steps.

        Returns:
            A summary: ``out``, ``generator`` (path), ``steps``, ``wall_time_s``, ``final``
            (the last metrics record), ``preset``.

        Raises:
            GanaugConfigError, GanaugDataError: bad settings or data.
            GanaugTrainingError: a non-finite loss (the last good checkpoint is kept), or a
                resume that does not match the run.
            KeyboardInterrupt: Ctrl-C / SIGTERM, after writing a checkpoint; its message says
                how to resume.
        """
        self.dist, self.device = D_.setup(self.user_cfg.device)
        old_handlers = self._install_signal_handlers()
        try:
            self._prepare()
            return self._loop()
        finally:
            self._restore_signal_handlers(old_handlers)
            D_.teardown(self.dist)

    def setup(self) -> None:
        """Build everything :meth:`fit` would, in this process alone, without training.

        For benchmarks and notebooks that drive :meth:`train_step` themselves; joins no
        process group and writes only ``config.yaml``.
        """
        self.dist, self.device = D_.DistInfo(), D_.select_device(self.user_cfg.device)
        self._prepare()
        self.G.train()
        self.D.train()

    def train_step(self) -> dict[str, torch.Tensor]:
        """One generator step (after ``d_steps`` D steps) and the EMA update.

        Returns the step's losses as device tensors: no host sync, no logging.
        """
        return self._train_step()

    # -- setup -----------------------------------------------------------------------------
    def _log(self, text: str) -> None:
        if self.dist.is_main:
            print(text, flush=True)

    def _prepare(self) -> None:
        cfg = self.user_cfg
        out = Path(cfg.out or Path("runs") / data_name(cfg.data))
        self.out = out
        self.ckpt_path = out / "checkpoints" / "last.pt"
        saved, ckpt = None, None
        if cfg.resume:
            ckpt = load_checkpoint(self.ckpt_path, "cpu")
            saved = read_yaml(out / "config.yaml") if (out / "config.yaml").is_file() \
                else ckpt["config"]
            cfg = merge_saved(cfg, saved)
        elif self.ckpt_path.is_file():
            raise GanaugTrainingError(
                f"{str(out)!r} already holds a run (checkpoints/last.pt). Pass --resume to "
                "continue it, or choose another --out for a new run.")
        if self.data is None:
            from ganaug.data import load_data

            self.data = load_data(cfg.data, size=cfg.image_size, channels=cfg.channels,
                                  per_class=cfg.per_class, imbalance=cfg.imbalance,
                                  seed=cfg.seed or 0)
        data = self.data
        cfg, self.preset = resolve_config(
            replace_out(cfg, str(out)), num_images=len(data), channels=data.channels,
            image_size=data.image_size, device_type=self.device.type)
        self.cfg = cfg
        self._check_data(data)
        if ckpt is not None:
            self._check_resume(saved, ckpt)
        D_.barrier(self.dist)
        self._log(self.preset)
        if self.dist.is_main:
            cfg.to_yaml(out / "config.yaml")
        self._build()
        if ckpt is not None:
            self._load_state(ckpt)
        else:
            self.wall_time = 0.0
            self._seed_training_rngs()

    def _check_data(self, data) -> None:
        cfg = self.cfg
        n_rank = len(data) // self.dist.world
        if n_rank < cfg.batch_size:
            per = f" per process ({self.dist.world} processes)" if self.dist.enabled else ""
            raise GanaugDataError(
                f"The dataset has {len(data)} images, {n_rank}{per} — fewer than one batch of "
                f"{cfg.batch_size}. Use a smaller batch, e.g. --batch {max(1, n_rank // 2)}, "
                "or more data.")
        labels = data.labels
        if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= data.num_classes):
            raise GanaugDataError(
                f"Labels range over [{int(labels.min())}, {int(labels.max())}] but the dataset "
                f"has {data.num_classes} classes ({', '.join(data.classes[:10])}); labels must "
                f"be in [0, {data.num_classes - 1}]. Fix the labels or the class list.")

    def _check_resume(self, saved: dict[str, Any], ckpt: dict[str, Any]) -> None:
        diffs = arch_differences(saved, self.cfg)
        if int(ckpt["num_classes"]) != self.data.num_classes:
            diffs.append(f"num_classes: {ckpt['num_classes']} (checkpoint) -> "
                         f"{self.data.num_classes} (now, from the data)")
        if diffs:
            raise GanaugTrainingError(
                f"Cannot resume {str(self.out)!r}: the architecture changed.\n  "
                + "\n  ".join(diffs)
                + "\nResume with the original settings, or start a new run with another --out.")
        if ckpt.get("data_fingerprint") != self.data.fingerprint():
            self._log("warning: the data differ from the checkpoint's (fingerprint changed); "
                      "resuming on the new data.")
        changed = [k for k, v in self.cfg.to_dict().items()
                   if k not in ("steps", "resume", "device", "out") and saved.get(k) != v]
        if changed:
            self._log(f"note: resuming with changed settings: {', '.join(changed)}")

    def _build(self) -> None:
        from ganaug.diffaug import AdaptiveAugment, parse_policy
        from ganaug.generator import Generator
        from ganaug.losses import LeCamEMA, get_loss
        from ganaug.models import build_discriminator, build_generator
        from ganaug.models.layers import count_parameters

        cfg, data, dev = self.cfg, self.data, self.device
        g_kw, d_kw = split_arch_kwargs(cfg.arch, cfg.arch_kwargs)
        torch.manual_seed(cfg.seed)  # equal initial weights on every rank
        self.G = build_generator(cfg.arch, num_classes=data.num_classes, channels=data.channels,
                                 image_size=data.image_size, z_dim=cfg.z_dim, **g_kw).to(dev)
        self.D = build_discriminator(cfg.arch, num_classes=data.num_classes,
                                     channels=data.channels, image_size=data.image_size,
                                     **d_kw).to(dev)
        if cfg.channels_last:
            self.G.to(memory_format=torch.channels_last)
            self.D.to(memory_format=torch.channels_last)
        self.G_ema = copy.deepcopy(self.G).requires_grad_(False).eval()
        self.generator = Generator(self.G_ema, classes=data.classes, arch=cfg.arch)
        self._log(f"parameters: G {count_parameters(self.G):,}  D {count_parameters(self.D):,}"
                  f"  ({cfg.arch}, {data.num_classes} classes, {data.image_size}x"
                  f"{data.image_size}x{data.channels}, device {dev})")

        self.G_train = D_.wrap_ddp(self.G, self.dist, dev)
        self.D_train = D_.wrap_ddp(self.D, self.dist, dev)
        g_fwd, d_fwd, d_raw = self.G_train, self.D_train, self.D
        if cfg.compile:
            g_fwd, d_fwd, d_raw = torch.compile(g_fwd), torch.compile(d_fwd), torch.compile(d_raw)
        self._g_fwd, self._d_fwd, self._d_raw = g_fwd, d_fwd, d_raw

        fused = {"fused": True} if dev.type == "cuda" else {"foreach": True}
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=cfg.lr_g, betas=cfg.betas, **fused)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=cfg.lr_d, betas=cfg.betas, **fused)
        self.autocast, self.amp_dtype, use_scaler = _amp_settings(dev, cfg.amp)
        self.scaler_g = torch.amp.GradScaler(dev.type, enabled=use_scaler)
        self.scaler_d = torch.amp.GradScaler(dev.type, enabled=use_scaler)

        self.d_loss_fn, self.g_loss_fn = get_loss(cfg.loss)
        self.policy = parse_policy(cfg.diffaug)
        self.ada = AdaptiveAugment(target=cfg.ada_target) if cfg.ada else None
        self.lecam = LeCamEMA() if cfg.lecam_weight > 0 else None

        # The dataset stays uint8 in memory; on a GPU it moves there once when it is small.
        images = data.images
        if dev.type == "cuda" and images.numel() < 2**31:
            images = images.to(dev)
        self.images, self.labels = images, data.labels.to(images.device)
        self.order = BatchOrder(len(data), cfg.batch_size, cfg.seed, self.dist.rank,
                                self.dist.world)
        self._bad_d = torch.full((), _NO_STEP, dtype=torch.int64, device=dev)
        self._bad_g = torch.full((), _NO_STEP, dtype=torch.int64, device=dev)

    def _seed_training_rngs(self) -> None:
        import random

        import numpy as np

        # Each rank draws its own noise / augmentation; rank 0 of a 1-process run uses seed.
        s = self.cfg.seed + 7919 * self.dist.rank
        torch.manual_seed(s)
        np.random.seed(s % 2**32)
        random.seed(s)

    # -- checkpoints ------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        rngs = D_.gather_objects(self.dist, rng_state())
        return {
            "step": self.step, "real_batches": self.step * self.cfg.d_steps,
            "G": self.G.state_dict(), "D": self.D.state_dict(), "G_ema": self.G_ema.state_dict(),
            "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
            "scaler_g": self.scaler_g.state_dict(), "scaler_d": self.scaler_d.state_dict(),
            "rng": rngs, "world_size": self.dist.world,
            "ada": self.ada.state_dict() if self.ada else None,
            "lecam": self.lecam.state_dict() if self.lecam else None,
            "num_classes": self.data.num_classes, "classes": list(self.data.classes),
            "data_fingerprint": self._fingerprint(), "config": self.cfg.to_dict(),
            "wall_time_s": self.wall_time,
        }

    def _fingerprint(self) -> str:
        if not hasattr(self, "_fp"):
            self._fp = self.data.fingerprint()
        return self._fp

    def _load_state(self, ckpt: dict[str, Any]) -> None:
        self.G.load_state_dict(ckpt["G"])
        self.D.load_state_dict(ckpt["D"])
        self.G_ema.load_state_dict(ckpt["G_ema"])
        self.opt_g.load_state_dict(ckpt["opt_g"])
        self.opt_d.load_state_dict(ckpt["opt_d"])  # moves the state to the params' device
        self.scaler_g.load_state_dict(ckpt["scaler_g"])
        self.scaler_d.load_state_dict(ckpt["scaler_d"])
        if self.ada and ckpt.get("ada"):
            self.ada.load_state_dict(ckpt["ada"])
        if self.lecam and ckpt.get("lecam"):
            self.lecam.load_state_dict(ckpt["lecam"])
        self.step = int(ckpt["step"])
        self.wall_time = float(ckpt.get("wall_time_s", 0.0))
        rngs = ckpt["rng"]
        if len(rngs) == self.dist.world:
            set_rng_state(rngs[self.dist.rank])
        else:
            self._log(f"note: the checkpoint has {len(rngs)} process(es), this run "
                      f"{self.dist.world}; noise streams are reseeded (the run stays valid, "
                      "not bit-identical).")
            self._seed_training_rngs()
            torch.manual_seed(self.cfg.seed + 7919 * self.dist.rank + self.step)
        self._trim_metrics()
        self._log(f"resumed {str(self.out)!r} at step {self.step} of {self.cfg.steps}")

    def _trim_metrics(self) -> None:
        if self.dist.is_main:
            trim_metrics(self.out, self.step)

    def _check_finite(self) -> None:
        """Raise if any loss was NaN/Inf since the start (one host sync)."""
        bad = torch.stack([self._bad_d, self._bad_g])
        D_.all_reduce_(self.dist, bad, "min")
        bad_d, bad_g = (int(v) for v in bad.tolist())
        if min(bad_d, bad_g) >= _NO_STEP:
            return
        which, at = ("discriminator", bad_d) if bad_d <= bad_g else ("generator", bad_g)
        kept = (f"The last good checkpoint ({str(self.ckpt_path)!r}) is kept; "
                if self.ckpt_path.is_file() else "No checkpoint was written yet; ")
        raise GanaugTrainingError(
            f"Training diverged: the {which} loss became NaN/Inf at generator step {at}. "
            f"{kept}try a lower learning rate (--lr-g/--lr-d, e.g. half of {self.cfg.lr_d:g}), "
            "an R1 penalty (r1_gamma: 0.1-10 in the YAML), --no-amp, and check the data "
            "(ganaug data info).")

    def save_checkpoint(self) -> Path:
        """Write ``checkpoints/last.pt`` and ``generator.safetensors`` (rank 0; all ranks call)."""
        self._check_finite()
        state = self._state()
        if self.dist.is_main:
            save_checkpoint(state, self.ckpt_path)
            self.save_generator()
        D_.barrier(self.dist)
        return self.ckpt_path

    def save_generator(self, final: dict[str, Any] | None = None) -> Path:
        """The EMA generator as ``generator.safetensors`` with the training summary."""
        from ganaug.io import save

        summary = {"data": self.data.spec or self.cfg.data, "data_fingerprint": self._fingerprint(),
                   "steps": self.step, "seed": self.cfg.seed, "wall_time_s": round(self.wall_time, 3),
                   "config": self.cfg.to_dict(), "final": final or self._last_record or {}}
        return save(self.generator, self.out / "generator.safetensors",
                    metadata={"training": summary})

    def save_samples(self) -> Path:
        """``samples/step_XXXXXX.png``: one row per class, fixed noise (seed = cfg.seed)."""
        return write_samples(self.generator, self.out, self.step, self.cfg.seed, SAMPLE_PER_CLASS)

    def _save_loss_plot(self) -> None:
        write_loss_plot(self.out)

    # -- signals ----------------------------------------------------------------------------
    def _install_signal_handlers(self) -> dict | None:
        if threading.current_thread() is not threading.main_thread():
            return None

        def handler(signum, frame):
            if self._stop_reason is not None or not self._in_step:
                raise KeyboardInterrupt  # a second Ctrl-C, or outside a step: stop now
            self._stop_reason = signal.Signals(signum).name

        old = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            old[sig] = signal.signal(sig, handler)
        return old

    @staticmethod
    def _restore_signal_handlers(old: dict | None) -> None:
        for sig, h in (old or {}).items():
            signal.signal(sig, h)

    # -- the loop ---------------------------------------------------------------------------
    def _autocast(self):
        if not self.autocast:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _augment(self, x: torch.Tensor) -> torch.Tensor:
        from ganaug.diffaug import diff_augment

        p = self.ada.p if self.ada else 1.0
        return diff_augment(x, self.policy, p=p)

    def _real_batch(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.cfg.num_workers > 0 and self.images.device.type == "cpu":
            if getattr(self, "_batch_iter", None) is None or self._next_batch != i:
                self._batch_iter = self._worker_batches(i)
            images, labels = next(self._batch_iter)
            self._next_batch = i + 1
        else:
            idx = self.order.indices(i).to(self.images.device)
            images, labels = self.images[idx], self.labels[idx]
        real = images.to(self.device, non_blocking=True).float().div_(127.5).sub_(1.0)
        if self.cfg.channels_last:
            real = real.contiguous(memory_format=torch.channels_last)
        return real, labels.to(self.device, non_blocking=True)

    def _worker_batches(self, start: int):
        """Batches ``start, start + 1, ...`` sliced by ``num_workers`` DataLoader workers (the
        same batches, in the same order, as without workers)."""
        loader = torch.utils.data.DataLoader(
            RealBatches(self.images, self.labels, self.order), batch_size=None,
            sampler=range(start, 2**62), num_workers=self.cfg.num_workers,
            pin_memory=self.device.type == "cuda",
            # its own generator: the workers' base seed must not consume the global RNG
            generator=torch.Generator().manual_seed(self.cfg.seed))
        return iter(loader)

    def _noise(self, n: int, labels: torch.Tensor | None = None):
        z = torch.randn(n, self.cfg.z_dim, device=self.device)
        if labels is None:
            labels = torch.randint(0, self.data.num_classes, (n,), device=self.device)
        return z, labels

    def _d_step(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        cfg = self.cfg
        real, labels = self._real_batch(i)
        n = real.shape[0]
        # WGAN-GP interpolates real and fake of the same class, so fakes reuse the real labels.
        z, fake_labels = self._noise(n, labels.clone() if cfg.loss == "wgan-gp" else None)
        with torch.no_grad(), self._autocast():
            fake = self.G(z, fake_labels)
        real_aug, fake_aug = self._augment(real), self._augment(fake)
        if cfg.r1_gamma > 0:
            real_aug = real_aug.detach().requires_grad_(True)
        self.opt_d.zero_grad(set_to_none=True)
        with self._autocast():
            # One D forward on [real; fake]: one DDP all-reduce per backward.
            logits = self._d_fwd(torch.cat([real_aug, fake_aug]),
                                 torch.cat([labels, fake_labels])).float()
            logits_real, logits_fake = logits[:n], logits[n:]
            loss_d = self.d_loss_fn(logits_real, logits_fake)
            if cfg.r1_gamma > 0:
                from ganaug.losses import r1_penalty

                loss_d = loss_d + 0.5 * cfg.r1_gamma * r1_penalty(logits_real, real_aug)
            if cfg.loss == "wgan-gp":
                from ganaug.losses import gradient_penalty

                loss_d = loss_d + GP_WEIGHT * gradient_penalty(self._d_raw, real_aug, fake_aug,
                                                               labels)
            if self.lecam is not None:
                from ganaug.losses import lecam_reg

                loss_d = loss_d + cfg.lecam_weight * lecam_reg(
                    logits_real, logits_fake, self.lecam.real, self.lecam.fake)
        self.scaler_d.scale(loss_d).backward()
        self.scaler_d.step(self.opt_d)
        self.scaler_d.update()
        if self.lecam is not None:
            self.lecam.update(logits_real, logits_fake)
        if self.ada is not None:
            p = self.ada.update(logits_real, n * self.dist.world)
            self.ada.p = D_.broadcast_float(self.dist, p, self.device)
        self._note_bad(self._bad_d, loss_d)
        return loss_d.detach(), logits_real.detach().mean(), logits_fake.detach().mean()

    def _g_step(self) -> torch.Tensor:
        n = self.cfg.batch_size
        z, fake_labels = self._noise(n)
        self.D.requires_grad_(False)  # D's weight grads are not needed for G's step
        self.opt_g.zero_grad(set_to_none=True)
        with self._autocast():
            fake = self._g_fwd(z, fake_labels)
            loss_g = self.g_loss_fn(self._d_raw(self._augment(fake), fake_labels).float())
        self.scaler_g.scale(loss_g).backward()
        self.scaler_g.step(self.opt_g)
        self.scaler_g.update()
        self.D.requires_grad_(True)
        self._note_bad(self._bad_g, loss_g)
        return loss_g.detach()

    def _note_bad(self, tracker: torch.Tensor, loss: torch.Tensor) -> None:
        # No host sync: remember the first step whose loss was not finite.
        here = torch.where(torch.isfinite(loss.detach()), _NO_STEP, self.step + 1)
        torch.minimum(tracker, here.to(tracker.dtype), out=tracker)

    def _train_step(self) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        for j in range(cfg.d_steps):
            loss_d, d_real, d_fake = self._d_step(self.step * cfg.d_steps + j)
        loss_g = self._g_step()
        self.step += 1
        ema_update(self.G_ema, self.G, ema_decay_at(self.step, cfg.ema_decay, cfg.ema_start))
        return {"loss_d": loss_d, "loss_g": loss_g, "d_real": d_real, "d_fake": d_fake}

    def _loop(self) -> dict[str, Any]:
        cfg = self.cfg
        self._last_record: dict[str, Any] | None = None
        if self.step >= cfg.steps:
            self._log(f"the run is already at step {self.step} >= --steps {cfg.steps}; raise "
                      "--steps to train longer.")
            return self._summary()
        bar = self._progress_bar()
        t_log, s_log = time.perf_counter(), self.step
        t_run = time.perf_counter()
        wall0 = self.wall_time
        self.G.train()
        self.D.train()
        try:
            while self.step < cfg.steps:
                self._in_step = True
                values = self._train_step()
                self._in_step = False
                for hook in self.hooks:
                    hook(self, self.step)
                self.wall_time = wall0 + time.perf_counter() - t_run
                bar.update(1)
                last = self.step == cfg.steps
                if self.step % cfg.log_every == 0 or last:
                    now = time.perf_counter()
                    self._log_metrics(values, (now - t_log) / max(1, self.step - s_log), bar)
                    t_log, s_log = now, self.step
                    self._check_finite()
                if self.dist.enabled and self.step % cfg.log_every == 0:
                    self._sync_stop()
                if self._stop_reason:
                    raise KeyboardInterrupt(self._stop_reason)
                if self.step % cfg.ckpt_every == 0 and not last:
                    self.save_checkpoint()
                if self.step % cfg.sample_every == 0 or last:
                    self._check_finite()  # a collective: every rank calls it
                    if self.dist.is_main:
                        self.save_samples()
                        self._save_loss_plot()
        except KeyboardInterrupt as err:
            bar.close()
            raise self._interrupted(err) from None
        finally:
            bar.close()
        self.save_checkpoint()
        if self.dist.is_main:
            self._save_loss_plot()
        return self._summary()

    def _sync_stop(self) -> None:
        flag = torch.tensor([1 if self._stop_reason else 0], device=self.device)
        D_.all_reduce_(self.dist, flag, "max")
        if int(flag.item()) and not self._stop_reason:
            self._stop_reason = "SIGINT"

    def _interrupted(self, err: BaseException) -> KeyboardInterrupt:
        if self._in_step:
            where = (f"the last checkpoint {str(self.ckpt_path)!r}" if self.ckpt_path.is_file()
                     else "nothing (no checkpoint was written yet)")
            msg = (f"Interrupted inside step {self.step + 1}; that step is lost. Resume from "
                   f"{where} with the same command plus --resume.")
        else:
            self.save_checkpoint()
            msg = (f"Interrupted at step {self.step} of {self.cfg.steps}; checkpoint written to "
                   f"{str(self.ckpt_path)!r}. Resume with the same command plus --resume "
                   f"(--out {self.out}).")
        return KeyboardInterrupt(msg)  # the CLI prints it; exit status 130

    def _progress_bar(self):
        from tqdm.auto import tqdm

        return tqdm(total=self.cfg.steps, initial=self.step, desc="train", unit="step",
                    disable=not self.dist.is_main, dynamic_ncols=True, file=sys.stderr)

    def _log_metrics(self, values: dict[str, torch.Tensor], step_time: float, bar) -> None:
        cfg = self.cfg
        numbers = {k: float(v) for k, v in zip(values, torch.stack(list(values.values())).tolist())}
        images = cfg.batch_size * cfg.d_steps * self.dist.world
        record = {"step": self.step, **{k: round(v, 6) for k, v in numbers.items()},
                  "ada_p": round(self.ada.p, 6) if self.ada else None,
                  "step_time": round(step_time, 6),
                  "images_per_s": round(images / step_time, 2) if step_time > 0 else None}
        self._last_record = record
        bar.set_postfix(loss_d=f"{numbers['loss_d']:.3f}", loss_g=f"{numbers['loss_g']:.3f}",
                        img_s=f"{record['images_per_s'] or 0:.0f}", refresh=False)
        if self.dist.is_main:
            append_metrics(self.out, record)

    def _summary(self) -> dict[str, Any]:
        return {"out": str(self.out), "generator": str(self.out / "generator.safetensors"),
                "steps": self.step, "wall_time_s": round(self.wall_time, 3),
                "final": self._last_record or {}, "preset": self.preset}


def replace_out(cfg: TrainConfig, out: str) -> TrainConfig:
    """``cfg`` with ``out`` set (the resolved run folder)."""
    from dataclasses import replace

    return replace(cfg, out=out)


def train(cfg: TrainConfig, **kwargs: Any) -> dict[str, Any]:
    """``Trainer(cfg, **kwargs).fit()``."""
    return Trainer(cfg, **kwargs).fit()


__all__ = ["BatchOrder", "Trainer", "ema_decay_at", "ema_update", "split_arch_kwargs", "train"]

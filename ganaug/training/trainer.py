"""The class-conditional GAN training loop: ``Trainer(cfg).fit()``, and :func:`train_or_resume`.

The loop draws the real batches of a step, runs :class:`~ganaug.training.step.GANStep`, counts
the step and hands the losses to the callbacks (logging, checkpoints, samples, the NaN guard,
signals). Runs are exactly resumable on the CPU: the data order is a function of the step
counter and every RNG state is checkpointed. See docs/training.md for the objective and options.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from ganaug._checks import is_count
from ganaug._devices import resolve_device
from ganaug._specs import check_output_outside
from ganaug.config import TrainConfig, data_name, merge_saved, resolve_config
from ganaug.data import LabeledImages, load_data
from ganaug.errors import GanaugConfigError
from ganaug.generator import Generator
from ganaug.models import list_archs, supported_sizes
from ganaug.models.layers import check_square, nearest_size
from ganaug.training import distributed
from ganaug.training.batches import RealBatchSource, check_data
from ganaug.training.callbacks import Callback, CallbackList, HookCallback
from ganaug.training.dataset_input import images_from_dataset
from ganaug.training.distributed import DistInfo
from ganaug.training.run_dir import RankRNG, RunDir
from ganaug.training.step import GANStep


def run_folder(cfg: TrainConfig) -> Path:
    """The run folder of ``cfg``: ``cfg.out``, else ``runs/<data name>``."""
    return Path(cfg.out or Path("runs") / data_name(cfg.data))


def load_training_data(cfg: TrainConfig) -> LabeledImages:
    """``load_data`` with the config's data fields (the images a run trains on)."""
    return load_data(cfg.data, size=cfg.image_size, channels=cfg.channels,
                     per_class=cfg.per_class, imbalance=cfg.imbalance, seed=cfg.seed or 0)


def check_image_size(cfg: TrainConfig) -> None:
    """Refuse an image size no arch builds before any image is loaded and resized to it.

    Raises:
        GanaugConfigError: ``cfg.image_size`` is not supported by ``cfg.arch`` (any arch when
            unset).
    """
    if cfg.image_size is None:
        return
    sizes = supported_sizes(cfg.arch if cfg.arch in list_archs() else None)
    if cfg.image_size not in sizes:
        n = cfg.image_size
        raise GanaugConfigError(
            (f"Arch {cfg.arch!r} cannot make" if cfg.arch else "No registered arch makes")
            + f" {n}x{n} images "
            f"(image_size={n}); it supports sizes {', '.join(map(str, sizes))}, the "
            f"nearest is {nearest_size(sizes, n)}: image_size={nearest_size(sizes, n)}. Images are "
            "resized to it before training.")


class Trainer:
    """Train a class-conditional GAN as configured.

    Args:
        cfg: the run's :class:`TrainConfig` (``None`` fields are resolved from the preset).
        data: the training images: ``LabeledImages``, or a map-style torch ``Dataset`` of
            ``(image, label)`` (ImageFolder, a timm dataset, a ``Subset``...) that tells its
            class names; it is read once, resized to ``cfg.image_size`` (see
            :func:`~ganaug.training.dataset_input.images_from_dataset`). Default:
            ``load_data(cfg.data, ...)``; with ``data=``, ``cfg.data`` only names the run.
        callbacks: :class:`~ganaug.training.Callback` objects run before the built-ins
            (one that is an instance of a built-in class replaces it; see ``callbacks.py``).
        hooks: callables ``hook(trainer, step)`` run after every completed generator step
            (on every rank). Raising ``KeyboardInterrupt`` there stops the run cleanly.

    After :meth:`fit`, ``trainer.generator`` is the EMA generator wrapped in
    :class:`ganaug.Generator`, ``trainer.cfg`` the resolved config and ``trainer.gan`` the
    :class:`~ganaug.training.GANStep` (networks, optimisers, losses).
    """

    def __init__(self, cfg: TrainConfig, *, data: LabeledImages | Any | None = None,
                 callbacks: Iterable[Callback] | None = None,
                 hooks: list[Callable[[Trainer, int], None]] | None = None) -> None:
        if not isinstance(cfg, TrainConfig):
            raise GanaugConfigError(f"Trainer needs a TrainConfig, got {type(cfg).__name__}.")
        self.user_cfg, self.data = cfg, data
        self.hooks = list(hooks or [])
        self.callbacks = CallbackList([HookCallback(self.hooks), *(callbacks or [])])
        self.step, self.wall_time, self.in_step = 0, 0.0, False
        self.last_record: dict[str, Any] | None = None

    @property
    def generator(self) -> Generator:
        """The EMA generator (what ``generator.safetensors`` holds)."""
        return self.gan.generator

    @cached_property
    def fingerprint(self) -> str:
        """The training data's fingerprint (recorded in the checkpoint and the model file)."""
        return self.data.fingerprint()

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
        self.dist, self.device = distributed.setup(self.user_cfg.device)
        try:
            self.callbacks.setup(self)
            self._prepare(write=True)
            summary = self._loop()
            # every rank done before any ends the group: a rank that destroyed its gloo group
            # while rank 0 still wrote the model aborted at exit (SIGABRT, CI on 2026-11-28)
            distributed.barrier(self.dist)
            return summary
        finally:
            self.callbacks.teardown(self)
            distributed.teardown(self.dist)

    def setup(self) -> None:
        """Build everything :meth:`fit` would, in this process alone, without training.

        For benchmarks and notebooks that drive :meth:`train_step` themselves; joins no
        process group and writes no file.
        """
        self.dist, self.device = DistInfo(), resolve_device(self.user_cfg.device)
        self._prepare(write=False)

    def train_step(self) -> dict[str, torch.Tensor]:
        """One generator step (after ``d_steps`` D steps) and the EMA update.

        Returns the step's losses as device tensors: no host sync, no logging.
        """
        self.in_step = True
        batches = self.batches.for_step(self.step)
        losses = self.gan.step(batches, step=self.step + 1)
        self.step += 1
        self.in_step = False
        return losses

    def save_checkpoint(self) -> Path:
        """Write ``checkpoints/last.pt`` and ``generator.safetensors`` (rank 0; all ranks call).

        Callbacks' ``on_checkpoint`` run first (the divergence guard refuses a bad state).
        """
        self.callbacks.on_checkpoint(self)
        self.run.save_checkpoint()
        self.save_generator()
        distributed.barrier(self.dist)
        return self.run.ckpt_path

    def save_generator(self, final: dict[str, Any] | None = None) -> Path:
        """The EMA generator as ``generator.safetensors`` with the training summary."""
        cfg = self.cfg
        summary = {"data": self.data.spec or cfg.data, "data_fingerprint": self.fingerprint,
                   "steps": self.step, "seed": cfg.seed, "wall_time_s": round(self.wall_time, 3),
                   "config": cfg.to_dict(), "final": final or self.last_record or {}}
        return self.run.write_generator(self.generator, summary)

    def log(self, text: str) -> None:
        """Print ``text`` on rank 0."""
        if self.dist.is_main:
            print(text, flush=True)

    # -- checkpoint state (the loop's part) ------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The step, wall time and what identifies the run (classes, data, config)."""
        return {"step": self.step, "real_batches": self.step * self.cfg.d_steps,
                "wall_time_s": self.wall_time, "num_classes": self.data.num_classes,
                "classes": list(self.data.classes), "data_fingerprint": self.fingerprint,
                "config": self.cfg.to_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        step = state["step"]
        if not is_count(step):
            raise ValueError(f"its step is {step!r:.40}, not a count of steps (an int >= 0)")
        self.step = step
        self.wall_time = float(state.get("wall_time_s", 0.0))

    # -- the run ---------------------------------------------------------------------------
    def _prepare(self, *, write: bool) -> None:
        cfg = self.user_cfg
        self.run = run = RunDir(run_folder(cfg), dist=self.dist)
        if self.data is None:  # before --out is made: as a class folder it would break --data
            check_output_outside(run.out, cfg.data)
        ckpt = run.load_checkpoint() if cfg.resume else None
        saved = run.saved_config(ckpt) if ckpt is not None else None
        if saved is not None:
            cfg = merge_saved(cfg, saved)
            if write:
                run.remove_temp_files()
        elif write:
            run.refuse_overwrite()
        try:
            self._build(cfg, ckpt, saved, write=write)
        except BaseException:
            run.remove_made_folders()  # a refused new run leaves no empty --out behind
            raise

    def _build(self, cfg: TrainConfig, ckpt: dict[str, Any] | None,
               saved: dict[str, Any] | None, *, write: bool) -> None:
        run = self.run
        check_image_size(cfg)
        if self.data is None:
            self.data = load_training_data(cfg)
        elif not isinstance(self.data, LabeledImages):
            if cfg.per_class is not None or cfg.imbalance is not None:
                raise GanaugConfigError(
                    "per_class and imbalance subset a dataset spec; with data= a Dataset, pass "
                    "a torch.utils.data.Subset of it instead.")
            self.data = images_from_dataset(self.data, size=cfg.image_size,
                                            channels=cfg.channels)
            self.log(f"data: {self.data.source}, {self.data.num_classes} classes")
        data = self.data
        check_square(data.image_size, data.images.shape[-1],
                     supported_sizes(cfg.arch if cfg.arch in list_archs() else None))
        self.cfg, self.preset = resolve_config(
            replace(cfg, out=str(run.out)), num_images=len(data), channels=data.channels,
            image_size=data.image_size, device_type=self.device.type)
        check_data(data, self.cfg.batch_size, self.dist)
        if ckpt is not None:
            for note in run.check_resume(self.cfg, data, ckpt, saved, self.fingerprint):
                self.log(note)
        distributed.barrier(self.dist)
        self.log(self.preset)
        self.gan = GANStep(self.cfg, data.classes, device=self.device, dist=self.dist)
        self.log(self.gan.describe())
        self.batches = RealBatchSource(data, self.cfg, self.device, self.dist)
        if write and ckpt is None:
            # Only now: a run refused while its networks were built leaves --out as it was.
            run.write_config(self.cfg)
        rng = RankRNG(self.dist, self.cfg.seed, log=self.log)
        run.register(self, self.gan, rng, self.callbacks)
        if ckpt is None:
            rng.reseed()
            return
        run.restore(ckpt)
        run.trim_metrics(self.step)
        if write and self.step < self.cfg.steps:
            # A resume that trains records its settings; one already past --steps changes nothing
            # (config.yaml would claim a total below the run's own step).
            run.write_config(self.cfg)
        self.log(f"resumed {str(run.out)!r} at step {self.step} of {self.cfg.steps}")

    def _loop(self) -> dict[str, Any]:
        cfg = self.cfg
        if self.step >= cfg.steps:
            self.log(f"the run is already at step {self.step}, at or past its {cfg.steps} steps; "
                     "raise steps to train longer.")
            return self._summary()
        self.callbacks.on_fit_start(self)
        t0, wall0 = time.perf_counter(), self.wall_time
        try:
            while self.step < cfg.steps:
                losses = self.train_step()
                self.wall_time = wall0 + time.perf_counter() - t0
                self.callbacks.on_step_end(self, losses)
        except KeyboardInterrupt:
            self.callbacks.on_interrupt(self)
            raise KeyboardInterrupt(self._interrupt_message()) from None
        self.callbacks.on_fit_end(self)
        return self._summary()

    def _interrupt_message(self) -> str:
        path = self.run.ckpt_path
        if self.in_step:
            where = (f"the last checkpoint {str(path)!r}" if path.is_file()
                     else "nothing (no checkpoint was written yet)")
            return (f"Interrupted inside step {self.step + 1}; that step is lost. Resume from "
                    f"{where} with the same arguments plus resume=True.")
        return (f"Interrupted at step {self.step} of {self.cfg.steps}; checkpoint written to "
                f"{str(path)!r}. Resume with the same arguments plus resume=True "
                f"(out={str(self.run.out)!r}).")

    def _summary(self) -> dict[str, Any]:
        return {"out": str(self.run.out), "generator": str(self.run.generator_path),
                "steps": self.step, "wall_time_s": round(self.wall_time, 3),
                "final": self.last_record or {}, "preset": self.preset}


def train_or_resume(cfg: TrainConfig, *, data: LabeledImages | None = None,
                    callbacks: Iterable[Callback] | None = None) -> Path:
    """Train the run in ``cfg.out``, resume it from ``checkpoints/last.pt``, or do nothing when
    it is finished.

    Finished means ``generator.safetensors`` records ``cfg.steps`` steps (when ``cfg.steps`` is
    None: its own configured total) on data with the same fingerprint as ``data``.

    Args:
        cfg: the run's config (``resume`` is set from the folder).
        data: the training data (default: loaded from ``cfg``).
        callbacks: passed to :class:`Trainer`.

    Returns:
        The path of ``generator.safetensors``.
    """
    run = RunDir(run_folder(cfg))
    cfg = replace(cfg, out=str(run.out), resume=run.has_checkpoint() or None)
    if data is not None and not isinstance(data, LabeledImages):
        data = images_from_dataset(data, size=cfg.image_size, channels=cfg.channels)
    if data is None and run.generator_path.is_file():
        data = load_training_data(
            merge_saved(cfg, run.saved_config(run.load_checkpoint())) if cfg.resume else cfg)
    if run.finished(cfg.steps, lambda: data.fingerprint()):
        return run.generator_path
    Trainer(cfg, data=data, callbacks=callbacks).fit()
    return run.generator_path


__all__ = ["Trainer", "load_training_data", "run_folder", "train_or_resume"]

"""What happens around the training step: logging, checkpoints, sample grids, the NaN guard and
signal handling, each as a :class:`Callback` (Lightning's hooks, in miniature).

:class:`~ganaug.training.Trainer` runs the built-ins by default, in the order of
:data:`BUILTINS`; callbacks passed to ``Trainer(cfg, callbacks=[...])`` run first, and one that
is an instance of a built-in class takes that built-in's place. Every hook receives the trainer;
after a step, ``trainer.step`` is the number of generator steps done.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import torch

from ganaug.errors import GanaugConfigError, GanaugTrainingError
from ganaug.plots import save_generator_grid, save_loss_plot
from ganaug.training import distributed
from ganaug.training.step import NO_STEP

SAMPLE_PER_CLASS = 8
#: The training sample grids show at most this many classes (the first ones), one row each.
MAX_SAMPLE_ROWS = 64


class Callback:
    """A hook for each moment of :meth:`Trainer.fit`; every hook does nothing by default.

    Hooks run on every rank (guard rank-0-only work with ``trainer.dist.is_main``); a
    collective in a hook must run on every rank alike. Raising ``KeyboardInterrupt`` in
    :meth:`on_step_end` stops the run cleanly (a checkpoint is written).
    """

    def setup(self, trainer: Any) -> None:
        """``fit()`` begins, before the run folder, data and networks are prepared."""

    def on_fit_start(self, trainer: Any) -> None:
        """Everything is built (and restored on resume); the first step comes next."""

    def on_step_end(self, trainer: Any, losses: dict[str, torch.Tensor]) -> None:
        """A generator step is done; ``losses`` are its 0-d device tensors (reading one
        forces a host sync)."""

    def on_checkpoint(self, trainer: Any) -> None:
        """A checkpoint is about to be written; raise to keep the last one instead."""

    def on_interrupt(self, trainer: Any) -> None:
        """Ctrl-C, SIGTERM or a ``KeyboardInterrupt`` from a hook stops the run."""

    def on_fit_end(self, trainer: Any) -> None:
        """The run reached ``cfg.steps``."""

    def teardown(self, trainer: Any) -> None:
        """``fit()`` ends, however it ends."""

    def state_dict(self) -> dict[str, Any]:
        """What this callback needs to resume exactly (tensors and plain types)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""


class HookCallback(Callback):
    """``Trainer(hooks=[...])``: each ``hook(trainer, step)`` after every generator step."""

    def __init__(self, hooks: list[Callable[[Any, int], None]]) -> None:
        self.hooks = hooks

    def on_step_end(self, trainer, losses) -> None:
        for hook in self.hooks:
            hook(trainer, trainer.step)


def _due(trainer: Any, every: int) -> bool:
    return trainer.step % every == 0 or trainer.step == trainer.cfg.steps


# -- the built-ins --------------------------------------------------------------------------------
class MetricsLogger(Callback):
    """A tqdm bar, and every ``every`` steps (and the last) one record in ``metrics.jsonl``:
    ``step``, the losses, ``ada_p``, ``step_time`` (s) and ``images_per_s`` (real images
    through D, all processes). The record is also ``trainer.last_record``.

    Args:
        every: steps between records (None: ``cfg.log_every``). Each record is a host sync.
    """

    def __init__(self, every: int | None = None) -> None:
        self.every, self.bar = every, None

    def on_fit_start(self, trainer) -> None:
        from ganaug.progress import progress_bar

        # tqdm on a terminal; one plain line per interval in a log file (never a flood)
        self.bar = progress_bar(trainer.cfg.steps, initial=trainer.step, desc="train",
                                unit="step", disable=not trainer.dist.is_main,
                                dynamic_ncols=True, file=sys.stderr)
        self._t, self._s = time.perf_counter(), trainer.step

    def on_step_end(self, trainer, losses) -> None:
        self.bar.update(1)
        if not _due(trainer, self.every or trainer.cfg.log_every):
            return
        now = time.perf_counter()
        step_time = (now - self._t) / max(1, trainer.step - self._s)
        self._t, self._s = now, trainer.step
        cfg = trainer.cfg
        numbers = dict(zip(losses, torch.stack(list(losses.values())).tolist()))
        images = cfg.batch_size * cfg.d_steps * trainer.dist.world
        ada = trainer.gan.ada
        record = {"step": trainer.step, **{k: round(v, 6) for k, v in numbers.items()},
                  "ada_p": round(ada.p, 6) if ada else None,
                  "step_time": round(step_time, 6),
                  "images_per_s": round(images / step_time, 2) if step_time > 0 else None}
        trainer.last_record = record
        self.bar.set_postfix(loss_d=f"{numbers['loss_d']:.3f}", loss_g=f"{numbers['loss_g']:.3f}",
                             img_s=f"{record['images_per_s'] or 0:.0f}", refresh=False)
        trainer.run.append_metrics(record)

    def teardown(self, trainer) -> None:
        if self.bar is not None:
            self.bar.close()


class DivergenceGuard(Callback):
    """Stop with :class:`GanaugTrainingError` once a loss was NaN/Inf, keeping the last good
    checkpoint: checked (one host sync) at log and sample steps and before every checkpoint."""

    def on_step_end(self, trainer, losses) -> None:
        cfg = trainer.cfg
        if _due(trainer, cfg.log_every) or trainer.step % cfg.sample_every == 0:
            self.check(trainer)

    def on_checkpoint(self, trainer) -> None:
        self.check(trainer)

    def check(self, trainer) -> None:
        """Raise if any loss was not finite since the start (a collective under DDP).

        Raises:
            GanaugTrainingError: naming the network, the step and what to try.
        """
        bad = distributed.all_reduce_(trainer.dist, trainer.gan.first_bad_steps(), "min")
        bad_d, bad_g = (int(v) for v in bad.tolist())
        if min(bad_d, bad_g) >= NO_STEP:
            return
        which, at = ("discriminator", bad_d) if bad_d <= bad_g else ("generator", bad_g)
        path = trainer.run.ckpt_path
        kept = (f"The last good checkpoint ({str(path)!r}) is kept; " if path.is_file()
                else "No checkpoint was written yet; ")
        raise GanaugTrainingError(
            f"Training diverged: the {which} loss became NaN/Inf at generator step {at}. "
            f"{kept}try a lower learning rate (lr_g=/lr_d=, e.g. half of {trainer.cfg.lr_d:g}), "
            "an R1 penalty (the TrainConfig field r1_gamma, 0.1-10), amp=False, and check the data "
            "(ganaug data info).")


class GracefulStop(Callback):
    """SIGINT/SIGTERM inside a step finish the step, then stop the run as a ``KeyboardInterrupt``
    (a checkpoint is written); outside a step, or a second time, they stop at once. Under DDP
    the ranks agree on stopping every ``log_every`` steps."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self._old: dict = {}

    def setup(self, trainer) -> None:
        self.reason, self._old = None, {}
        if threading.current_thread() is not threading.main_thread():
            return

        def handler(signum, frame):
            if self.reason is not None or not trainer.in_step:
                raise KeyboardInterrupt  # a second Ctrl-C, or outside a step: stop now
            self.reason = signal.Signals(signum).name

        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old[sig] = signal.signal(sig, handler)

    def on_step_end(self, trainer, losses) -> None:
        if trainer.dist.enabled and trainer.step % trainer.cfg.log_every == 0:
            flag = torch.tensor([1 if self.reason else 0], device=trainer.device)
            distributed.all_reduce_(trainer.dist, flag, "max")
            if int(flag.item()) and not self.reason:
                self.reason = "SIGINT"
        if self.reason:
            raise KeyboardInterrupt(self.reason)

    def teardown(self, trainer) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old = {}


class Checkpointer(Callback):
    """``checkpoints/last.pt`` and ``generator.safetensors`` every ``every`` steps, at the end,
    and on an interrupt between steps.

    Args:
        every: steps between checkpoints (None: ``cfg.ckpt_every``).
    """

    def __init__(self, every: int | None = None) -> None:
        self.every = every

    def on_step_end(self, trainer, losses) -> None:
        if trainer.step % (self.every or trainer.cfg.ckpt_every) == 0 \
                and trainer.step != trainer.cfg.steps:
            trainer.save_checkpoint()

    def on_interrupt(self, trainer) -> None:
        if not trainer.in_step:
            trainer.save_checkpoint()

    def on_fit_end(self, trainer) -> None:
        trainer.save_checkpoint()


class SampleWriter(Callback):
    """Every ``every`` steps and at the end (rank 0): ``samples/step_XXXXXX.png`` (one row per
    class of the EMA generator, the first :data:`MAX_SAMPLE_ROWS` of a larger label set; fixed
    noise from ``cfg.seed``) and ``loss.png``.

    Args:
        every: steps between grids (None: ``cfg.sample_every``).
        per_class: images per class row.
    """

    def __init__(self, every: int | None = None, per_class: int = SAMPLE_PER_CLASS) -> None:
        self.every, self.per_class = every, per_class

    def on_step_end(self, trainer, losses) -> None:
        if trainer.dist.is_main and _due(trainer, self.every or trainer.cfg.sample_every):
            self.write(trainer)

    def write(self, trainer) -> None:
        """Draw the sample grid of this step and the loss plot."""
        run, step, n = trainer.run, trainer.step, trainer.generator.num_classes
        shown = None if n <= MAX_SAMPLE_ROWS else list(range(MAX_SAMPLE_ROWS))
        save_generator_grid(trainer.generator, run.out / "samples" / f"step_{step:06d}.png",
                            per_class=self.per_class, seed=trainer.cfg.seed, classes=shown,
                            title=f"step {step} (EMA)" + ("" if shown is None else
                                                          f", classes 1-{MAX_SAMPLE_ROWS} of {n}"))
        records = run.read_metrics()
        if records:
            save_loss_plot(records, run.out / "loss.png", title=run.out.name)


#: The built-in callbacks, in the order they run after the user's.
BUILTINS = (MetricsLogger, DivergenceGuard, GracefulStop, Checkpointer, SampleWriter)


class CallbackList:
    """The callbacks of a run: the user's, then the built-ins; one call runs a hook on each.

    Its ``state_dict`` holds the callbacks that have state under ``"callbacks"`` (nothing
    when none has), so it is registered in the checkpoint like any stateful object.

    Raises:
        GanaugConfigError: an item that is not a :class:`Callback`.
    """

    def __init__(self, callbacks: Iterable[Callback] = ()) -> None:
        user = list(callbacks)
        for cb in user:
            if not isinstance(cb, Callback):
                raise GanaugConfigError(
                    f"callbacks must be ganaug.training.Callback instances, got "
                    f"{type(cb).__name__}. Subclass Callback and override the hooks you need.")
        builtins = [next((cb for cb in user if isinstance(cb, cls)), None) or cls()
                    for cls in BUILTINS]
        self.callbacks = [cb for cb in user if not isinstance(cb, BUILTINS)] + builtins

    def __iter__(self):
        return iter(self.callbacks)

    def _each(self, hook: str, *args: Any) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)(*args)

    def setup(self, trainer) -> None:
        self._each("setup", trainer)

    def on_fit_start(self, trainer) -> None:
        self._each("on_fit_start", trainer)

    def on_step_end(self, trainer, losses) -> None:
        self._each("on_step_end", trainer, losses)

    def on_checkpoint(self, trainer) -> None:
        self._each("on_checkpoint", trainer)

    def on_interrupt(self, trainer) -> None:
        self._each("on_interrupt", trainer)

    def on_fit_end(self, trainer) -> None:
        self._each("on_fit_end", trainer)

    def teardown(self, trainer) -> None:
        self._each("teardown", trainer)

    def _keys(self) -> list[str]:
        names = [type(cb).__name__ for cb in self.callbacks]
        return [n if names.count(n) == 1 else f"{n}.{i}" for i, n in enumerate(names)]

    def state_dict(self) -> dict[str, Any]:
        states = {k: s for k, cb in zip(self._keys(), self.callbacks) if (s := cb.state_dict())}
        return {"callbacks": states} if states else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        saved = state.get("callbacks") or {}
        for key, cb in zip(self._keys(), self.callbacks):
            if key in saved:
                cb.load_state_dict(saved[key])


__all__ = ["BUILTINS", "Callback", "CallbackList", "Checkpointer", "DivergenceGuard",
           "GracefulStop", "HookCallback", "MetricsLogger", "SampleWriter"]

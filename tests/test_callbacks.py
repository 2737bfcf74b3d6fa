"""Tests of ganaug.training.callbacks: each built-in on a stand-in trainer, and how user
callbacks combine with the built-ins."""

from __future__ import annotations

import json
import os
import signal
from types import SimpleNamespace

import pytest
import torch

from ganaug.errors import GanaugConfigError, GanaugTrainingError
from ganaug.training import (
    Callback,
    Checkpointer,
    DivergenceGuard,
    GracefulStop,
    MetricsLogger,
    RunDir,
    SampleWriter,
)
from ganaug.training.callbacks import BUILTINS, CallbackList, HookCallback
from ganaug.training.distributed import DistInfo
from ganaug.training.step import NO_STEP


def fake_trainer(tmp_path, **cfg):
    """What the callbacks read of a Trainer: step, cfg, dist, device, run, gan, in_step."""
    settings = {"steps": 6, "log_every": 2, "sample_every": 3, "ckpt_every": 4, "batch_size": 8,
                "d_steps": 2, "seed": 0, "lr_d": 2e-4}
    settings.update(cfg)
    trainer = SimpleNamespace(
        step=0, cfg=SimpleNamespace(**settings), dist=DistInfo(), device=torch.device("cpu"),
        run=RunDir(tmp_path / "run"), in_step=False, last_record=None, saved=[],
        gan=SimpleNamespace(ada=None, bad=torch.tensor([NO_STEP, NO_STEP])))
    trainer.gan.first_bad_steps = lambda: trainer.gan.bad.clone()
    trainer.save_checkpoint = lambda: trainer.saved.append(trainer.step)
    return trainer


def run_steps(trainer, callback, steps, losses=None):
    losses = losses or {"loss_d": torch.tensor(1.25), "loss_g": torch.tensor(0.5),
                        "d_real": torch.tensor(0.75), "d_fake": torch.tensor(-0.25)}
    for _ in range(steps):
        trainer.step += 1
        callback.on_step_end(trainer, losses)


def test_metrics_logger_writes_a_record_every_n_steps_and_at_the_end(tmp_path, monkeypatch):
    clock = iter([10.0, 11.0, 12.0, 12.25])  # fit start, then steps 2, 4 and 5
    monkeypatch.setattr("ganaug.training.callbacks.time.perf_counter", lambda: next(clock))
    trainer = fake_trainer(tmp_path, steps=5)
    logger = MetricsLogger()
    logger.on_fit_start(trainer)
    run_steps(trainer, logger, 5)
    logger.teardown(trainer)
    records = trainer.run.read_metrics()
    assert [r["step"] for r in records] == [2, 4, 5]
    last = records[-1]
    assert (last["loss_d"], last["loss_g"], last["d_real"], last["d_fake"]) == (1.25, 0.5, 0.75,
                                                                                -0.25)
    assert [(r["step_time"], r["images_per_s"]) for r in records] == [(0.5, 32.0), (0.5, 32.0),
                                                                      (0.25, 64.0)]
    assert last["ada_p"] is None
    assert trainer.last_record == last


def test_metrics_logger_own_interval_and_ada_probability(tmp_path):
    trainer = fake_trainer(tmp_path, steps=3)
    trainer.gan.ada = SimpleNamespace(p=0.1234567)
    logger = MetricsLogger(every=1)
    logger.on_fit_start(trainer)
    run_steps(trainer, logger, 3)
    assert [(r["step"], r["ada_p"]) for r in trainer.run.read_metrics()] == [
        (1, 0.123457), (2, 0.123457), (3, 0.123457)]


def test_divergence_guard_passes_finite_runs_and_names_the_first_bad_step(tmp_path):
    trainer = fake_trainer(tmp_path)
    guard = DivergenceGuard()
    run_steps(trainer, guard, 2)
    trainer.gan.bad = torch.tensor([NO_STEP, 3])
    run_steps(trainer, guard, 0)
    with pytest.raises(GanaugTrainingError, match=r"generator loss became NaN/Inf at generator "
                                                  r"step 3\. No checkpoint was written yet; try a "
                                                  r"lower learning rate.*half of 0\.0002"):
        guard.on_checkpoint(trainer)
    trainer.gan.bad = torch.tensor([5, 5])  # both at once: D is named (its step runs first)
    trainer.step = 3  # a sample step: checked
    with pytest.raises(GanaugTrainingError, match=r"discriminator loss .* step 5"):
        guard.on_step_end(trainer, {})


def test_divergence_guard_checks_only_at_log_sample_and_last_steps(tmp_path):
    trainer = fake_trainer(tmp_path)
    trainer.gan.bad = torch.tensor([1, NO_STEP])
    guard = DivergenceGuard()
    trainer.step = 1  # neither a log (2), sample (3) nor the last (6) step
    guard.on_step_end(trainer, {})
    trainer.step = 2
    with pytest.raises(GanaugTrainingError, match="discriminator"):
        guard.on_step_end(trainer, {})


def test_checkpointer_every_n_steps_at_the_end_and_on_interrupt(tmp_path):
    trainer = fake_trainer(tmp_path, steps=8)
    ckpt = Checkpointer()
    run_steps(trainer, ckpt, 8)
    assert trainer.saved == [4]  # step 8 is the last: on_fit_end writes it
    ckpt.on_fit_end(trainer)
    assert trainer.saved == [4, 8]
    trainer.in_step = True  # interrupted inside a step: nothing consistent to save
    ckpt.on_interrupt(trainer)
    trainer.in_step = False
    ckpt.on_interrupt(trainer)
    assert trainer.saved == [4, 8, 8]
    trainer.step, trainer.saved = 0, []
    run_steps(trainer, Checkpointer(every=3), 7)
    assert trainer.saved == [3, 6]


def test_sample_writer_draws_grids_and_the_loss_plot(tmp_path, tiny_generator):
    trainer = fake_trainer(tmp_path, steps=4)
    trainer.generator = tiny_generator
    trainer.run.append_metrics({"step": 1, "loss_d": 1.0, "loss_g": 0.5})
    run_steps(trainer, SampleWriter(per_class=2), 4)
    out = trainer.run.out
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["step_000003.png",
                                                                   "step_000004.png"]
    assert (out / "loss.png").is_file()


def test_sample_writer_shows_at_most_the_first_classes_of_a_large_label_set(tmp_path):
    """One row per class made the training grid of a 1,000-class run 1,000 rows tall (and drew
    8,000 images every sample step); it shows the first MAX_SAMPLE_ROWS classes and says so."""
    from PIL import Image

    from ganaug.generator import Generator
    from ganaug.models import build_generator
    from ganaug.training.callbacks import MAX_SAMPLE_ROWS

    n = MAX_SAMPLE_ROWS + 30
    net = build_generator("dcgan", num_classes=n, channels=1, image_size=16, z_dim=4, width=8)
    trainer = fake_trainer(tmp_path, steps=1)
    trainer.generator = Generator(net.eval(), classes=[f"c{i}" for i in range(n)], arch="dcgan")
    drawn = []
    real = Generator.sample
    trainer.generator.sample = lambda *a, **k: drawn.append(a[0]) or real(trainer.generator, *a, **k)
    run_steps(trainer, SampleWriter(every=1, per_class=2), 1)
    assert list(drawn[0]) == list(range(MAX_SAMPLE_ROWS))
    with Image.open(trainer.run.out / "samples" / "step_000001.png") as grid:
        assert grid.format == "PNG"


def test_sample_writer_is_quiet_on_other_ranks(tmp_path, tiny_generator):
    trainer = fake_trainer(tmp_path, steps=3)
    trainer.dist, trainer.generator = DistInfo(rank=1, world=2), tiny_generator
    run_steps(trainer, SampleWriter(), 3)
    assert not trainer.run.out.exists()


def test_graceful_stop_finishes_the_step_then_stops_and_restores_handlers(tmp_path):
    trainer = fake_trainer(tmp_path)
    stop = GracefulStop()
    before = signal.getsignal(signal.SIGTERM)
    stop.setup(trainer)
    try:
        trainer.in_step = True
        os.kill(os.getpid(), signal.SIGTERM)  # inside a step: only noted
        assert stop.reason == "SIGTERM"
        trainer.in_step = False
        with pytest.raises(KeyboardInterrupt, match="SIGTERM"):
            run_steps(trainer, stop, 1)
        with pytest.raises(KeyboardInterrupt):  # a second signal stops at once
            os.kill(os.getpid(), signal.SIGINT)
    finally:
        stop.teardown(trainer)
    assert signal.getsignal(signal.SIGTERM) is before


def test_graceful_stop_outside_a_step_stops_at_once(tmp_path):
    trainer = fake_trainer(tmp_path)
    stop = GracefulStop()
    stop.setup(trainer)
    try:
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
        assert stop.reason is None
        run_steps(trainer, stop, 2)  # no signal pending: steps go on
    finally:
        stop.teardown(trainer)


def test_hook_callback_calls_each_hook_with_the_step(tmp_path):
    trainer, calls = fake_trainer(tmp_path), []
    run_steps(trainer, HookCallback([lambda tr, step: calls.append(step)]), 3)
    assert calls == [1, 2, 3]


class Remember(Callback):
    def __init__(self, value=0):
        self.value = value

    def state_dict(self):
        return {"value": self.value} if self.value else {}

    def load_state_dict(self, state):
        self.value = state["value"]


def test_callback_list_runs_user_callbacks_first_and_replaces_builtins_by_class():
    mine, logger = Remember(), MetricsLogger(every=7)
    callbacks = list(CallbackList([mine, logger]))
    assert callbacks[0] is mine
    assert [type(cb) for cb in callbacks[1:]] == list(BUILTINS)
    assert callbacks[1] is logger
    with pytest.raises(GanaugConfigError, match=r"Callback instances, got str"):
        CallbackList(["MetricsLogger"])


def test_callback_list_state_holds_only_callbacks_with_state():
    assert CallbackList([Remember()]).state_dict() == {}  # old checkpoints keep their keys
    state = CallbackList([Remember(3), Remember(5)]).state_dict()
    assert state == {"callbacks": {"Remember.0": {"value": 3}, "Remember.1": {"value": 5}}}
    fresh = CallbackList([Remember(), Remember()])
    fresh.load_state_dict(json.loads(json.dumps(state)))
    assert [cb.value for cb in fresh.callbacks[:2]] == [3, 5]
    fresh.load_state_dict({})  # a checkpoint without callback state
    assert fresh.callbacks[0].value == 3


HOOKS = ("setup", "on_fit_start", "on_step_end", "on_checkpoint", "on_interrupt", "on_fit_end",
         "teardown")


class Spy(Callback):
    """Records ``(name, hook)`` for every hook called."""

    def __init__(self, name, seen):
        self.name, self.seen = name, seen


for _hook in HOOKS:
    setattr(Spy, _hook, lambda self, *args, _hook=_hook: self.seen.append((self.name, _hook)))


def test_callback_list_dispatches_every_hook_to_each_callback_in_order():
    seen = []
    callbacks = CallbackList([Spy("a", seen), Spy("b", seen)])
    callbacks.callbacks = callbacks.callbacks[:2]  # without the built-ins
    for hook in HOOKS:
        args = (None, {}) if hook == "on_step_end" else (None,)
        getattr(callbacks, hook)(*args)
    assert seen == [(name, hook) for hook in HOOKS for name in "ab"]

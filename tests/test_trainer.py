"""Tests of ganaug.training.trainer: run files, exact resume, interrupts, the divergence guard,
user errors and train_or_resume."""

from __future__ import annotations

import json
import os
import re
import signal
from pathlib import Path

import numpy as np
import pytest
import torch

from ganaug.config import TrainConfig
from ganaug.errors import GanaugConfigError, GanaugDataError, GanaugTrainingError
from ganaug.training import Callback, RunDir, SampleWriter, Trainer, train_or_resume
from ganaug.training.step import cpu_has_native_bf16

N_IMAGES, N_CLASSES, SIZE = 48, 3, 16


@pytest.fixture(scope="module")
def npz_data(tmp_path_factory) -> str:
    """48 seeded 16x16 RGB images of 3 classes (a brightness ramp per class) as npz:PATH."""
    rng = np.random.default_rng(0)
    labels = np.arange(N_IMAGES) % N_CLASSES
    base = (labels[:, None, None, None] * 80 + 20).astype(np.float64)
    x = np.clip(base + rng.normal(0, 25, (N_IMAGES, SIZE, SIZE, 3)), 0, 255).astype(np.uint8)
    path = tmp_path_factory.mktemp("data") / "tiny.npz"
    np.savez(path, x=x, y=labels.astype(np.int64), classes=np.array(["dark", "mid", "light"]))
    return f"npz:{path}"


def _skip_pictures(monkeypatch) -> None:
    # matplotlib grids cost about a second per run; only the run-files test draws them.
    monkeypatch.setattr(SampleWriter, "write", lambda self, trainer: None)


@pytest.fixture
def with_pictures():
    """Request it to keep the sample grids and loss plot (skipped elsewhere)."""


@pytest.fixture(autouse=True)
def no_pictures(request, monkeypatch):
    if "with_pictures" not in request.fixturenames:
        _skip_pictures(monkeypatch)


def make_cfg(data: str, out: Path, **kw) -> TrainConfig:
    """A tiny CPU run: dcgan width 8, z 16, batch 8, 2 D steps, DiffAugment on."""
    base = {"data": data, "arch": "dcgan", "arch_kwargs": {"width": 8, "embed_dim": 8},
            "z_dim": 16, "batch_size": 8, "d_steps": 2, "steps": 3, "device": "cpu",
            "out": str(out), "diffaug": "color,translation,cutout", "sample_every": 100,
            "ckpt_every": 100, "log_every": 1, "seed": 3}
    base.update(kw)
    return TrainConfig(**base)


def st_tensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path))


def assert_same_tensors(a: Path, b: Path) -> None:
    ta, tb = st_tensors(a), st_tensors(b)
    assert sorted(ta) == sorted(tb)
    for key in ta:
        assert torch.equal(ta[key], tb[key]), key


@pytest.fixture(scope="module")
def reference_run(npz_data, tmp_path_factory) -> Path:
    """One uninterrupted 6-step run (crosses a data epoch: 6 batches of 8 per epoch, 12 used)."""
    out = tmp_path_factory.mktemp("ref") / "run"
    with pytest.MonkeyPatch.context() as mp:
        _skip_pictures(mp)
        Trainer(make_cfg(npz_data, out, steps=6)).fit()
    return out


# -- a run ------------------------------------------------------------------------------------
def test_three_step_run_writes_every_file(npz_data, tmp_path, with_pictures):
    from ganaug.io import load

    out = tmp_path / "run"
    trainer = Trainer(make_cfg(npz_data, out, steps=3, sample_every=2, ckpt_every=2))
    summary = trainer.fit()
    assert summary["steps"] == 3 and Path(summary["generator"]) == out / "generator.safetensors"
    for name in ("config.yaml", "checkpoints/last.pt", "samples/step_000002.png",
                 "samples/step_000003.png", "metrics.jsonl", "loss.png", "generator.safetensors"):
        assert (out / name).is_file(), name
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3]
    for key in ("loss_d", "loss_g", "d_real", "d_fake", "ada_p", "step_time", "images_per_s"):
        assert key in records[-1]
    assert np.isfinite(records[-1]["loss_d"]) and records[-1]["images_per_s"] > 0
    # the resolved config is saved and reads back equal
    assert TrainConfig.from_yaml(out / "config.yaml") == trainer.cfg
    assert trainer.cfg.image_size == SIZE and trainer.cfg.channels == 3
    # the model file holds the EMA generator: same images as the in-memory sampler
    gen = load(out / "generator.safetensors")
    assert gen.classes == ["dark", "mid", "light"] and gen.image_size == SIZE
    torch.testing.assert_close(gen.sample(n_per_class=2, seed=1),
                               trainer.generator.sample(n_per_class=2, seed=1), rtol=0, atol=0)
    training = gen.metadata["training"]
    assert training["steps"] == 3 and training["seed"] == 3
    assert training["data_fingerprint"] == trainer.data.fingerprint()
    ema_state = trainer.gan.G_ema.state_dict()
    for key, value in st_tensors(out / "generator.safetensors").items():
        assert torch.equal(value, ema_state[key]), key


def test_checkpoint_loads_with_weights_only(reference_run):
    ckpt = torch.load(reference_run / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["step"] == 6 and ckpt["real_batches"] == 12
    assert len(ckpt["rng"]) == 1 and ckpt["rng"][0]["torch"].dtype == torch.uint8
    for key in ("G", "D", "G_ema", "opt_g", "opt_d", "scaler_g", "scaler_d", "ada", "lecam"):
        assert key in ckpt
    assert ckpt["num_classes"] == N_CLASSES


def test_checkpoint_keeps_the_key_layout_of_earlier_versions(reference_run):
    # Files written before the training/ package had exactly these keys; they still resume.
    ckpt = torch.load(reference_run / "checkpoints" / "last.pt", weights_only=True)
    assert set(ckpt) == {"format", "step", "real_batches", "G", "D", "G_ema", "opt_g", "opt_d",
                         "scaler_g", "scaler_d", "rng", "world_size", "ada", "lecam",
                         "num_classes", "classes", "data_fingerprint", "config", "wall_time_s"}
    assert ckpt["format"] == 1 and ckpt["classes"] == ["dark", "mid", "light"]
    assert ckpt["ada"] is None and ckpt["lecam"] is None and ckpt["wall_time_s"] > 0


def test_every_torch_load_in_the_trainer_is_weights_only():
    root = Path(__file__).resolve().parents[1] / "ganaug"
    calls = []
    for path in [*sorted((root / "training").glob("*.py")), root / "config.py"]:
        calls += re.findall(r"torch\.load\(([^)]*)\)", path.read_text())
    assert calls and all("weights_only=True" in c for c in calls)


# -- resume -----------------------------------------------------------------------------------
def test_resume_is_bit_exact(npz_data, tmp_path, reference_run):
    out = tmp_path / "run"
    Trainer(make_cfg(npz_data, out, steps=3)).fit()
    assert torch.load(out / "checkpoints/last.pt", weights_only=True)["step"] == 3
    summary = Trainer(make_cfg(npz_data, out, steps=6, resume=True)).fit()
    assert summary["steps"] == 6
    assert_same_tensors(out / "generator.safetensors", reference_run / "generator.safetensors")
    a = torch.load(out / "checkpoints/last.pt", weights_only=True)
    b = torch.load(reference_run / "checkpoints/last.pt", weights_only=True)
    for key in a["D"]:
        assert torch.equal(a["D"][key], b["D"][key]), key
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_resume_inherits_the_saved_config(npz_data, tmp_path):
    out = tmp_path / "run"
    Trainer(make_cfg(npz_data, out, steps=1, seed=9)).fit()
    trainer = Trainer(TrainConfig(data=npz_data, out=str(out), steps=2, resume=True))
    trainer.fit()
    assert trainer.cfg.seed == 9 and trainer.cfg.arch_kwargs == {"width": 8, "embed_dim": 8}


def test_resume_past_the_total_does_nothing(npz_data, tmp_path, capsys):
    out = tmp_path / "run"
    Trainer(make_cfg(npz_data, out, steps=2)).fit()
    before = {name: (out / name).read_bytes() for name in ("checkpoints/last.pt", "config.yaml")}
    for steps in (2, 1):  # --steps below the run's step rewrote config.yaml to "steps: 1"
        assert Trainer(make_cfg(npz_data, out, steps=steps, resume=True)).fit()["steps"] == 2
        assert "raise steps to train longer" in capsys.readouterr().out
        assert {name: (out / name).read_bytes() for name in before} == before


def test_changed_architecture_resume_is_refused_listing_each_difference(npz_data, tmp_path):
    out = tmp_path / "run"
    Trainer(make_cfg(npz_data, out, steps=1)).fit()
    cfg = make_cfg(npz_data, out, steps=2, resume=True, arch_kwargs={"width": 16}, z_dim=8,
                   channels=1)
    with pytest.raises(GanaugTrainingError, match=r"architecture changed") as err:
        Trainer(cfg).fit()
    text = str(err.value)
    assert re.search(r"arch_kwargs: .*'width': 8.*-> \{'width': 16\}", text)
    assert "z_dim: 16 (checkpoint) -> 8 (now)" in text
    assert "channels: 3 (checkpoint) -> 1 (now)" in text
    assert "image_size" not in text


def test_resume_with_other_class_count_is_refused(npz_data, tmp_path):
    from ganaug.data import load_data

    out = tmp_path / "run"
    Trainer(make_cfg(npz_data, out, steps=1)).fit()
    data = load_data(npz_data)
    keep = data.labels < 2
    two = type(data)(data.images[keep], data.labels[keep], data.classes[:2], "two", "")
    with pytest.raises(GanaugTrainingError, match=r"num_classes: 3 \(checkpoint\) -> 2"):
        Trainer(make_cfg(npz_data, out, steps=2, resume=True), data=two).fit()


def test_resume_on_other_images_is_refused_and_changes_nothing(npz_data, tmp_path):
    # It warned and trained on: the model file then recorded only the new data, so a GAN that
    # began on the test images passed every leakage check of evaluate and experiment.
    from ganaug.data import load_data

    out = tmp_path / "run"
    data = load_data(npz_data)
    Trainer(make_cfg(npz_data, out, steps=1), data=data).fit()
    files = (out / "generator.safetensors", out / "checkpoints" / "last.pt", out / "config.yaml")
    before = {p.name: p.read_bytes() for p in files}
    other = type(data)(255 - data.images, data.labels, data.classes, "inverted", "")
    with pytest.raises(GanaugTrainingError, match=r"the training data differ from the "
                                                  r"checkpoint's.*new run"):
        Trainer(make_cfg(npz_data, out, steps=2, resume=True), data=other).fit()
    assert {p.name: p.read_bytes() for p in files} == before
    Trainer(make_cfg(npz_data, out, steps=2, resume=True), data=data).fit()  # same data: fine


def test_resume_without_checkpoint_and_overwrite_are_refused(npz_data, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(GanaugTrainingError, match=r"No checkpoint at .*drop resume=True"):
        Trainer(make_cfg(npz_data, out, resume=True)).fit()
    Trainer(make_cfg(npz_data, out, steps=1)).fit()
    with pytest.raises(GanaugTrainingError, match=r"already holds a run.*resume=True"):
        Trainer(make_cfg(npz_data, out, steps=1)).fit()


# -- interrupts -------------------------------------------------------------------------------
def test_keyboard_interrupt_writes_a_checkpoint_and_resume_finishes_exactly(
        npz_data, tmp_path, reference_run):
    out = tmp_path / "run"

    def stop_at_4(trainer, step):
        if step == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt, match=r"step 4 of 6.*resume=True"):
        Trainer(make_cfg(npz_data, out, steps=6), hooks=[stop_at_4]).fit()
    assert torch.load(out / "checkpoints/last.pt", weights_only=True)["step"] == 4
    Trainer(make_cfg(npz_data, out, steps=6, resume=True)).fit()
    assert_same_tensors(out / "generator.safetensors", reference_run / "generator.safetensors")


def test_keyboard_interrupt_from_a_callback_stops_like_a_hook(npz_data, tmp_path):
    class StopAt2(Callback):
        def on_step_end(self, trainer, losses):
            if trainer.step == 2:
                raise KeyboardInterrupt

    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt, match=r"Interrupted at step 2 of 6.*out="):
        Trainer(make_cfg(npz_data, out, steps=6), callbacks=[StopAt2()]).fit()
    assert torch.load(out / "checkpoints/last.pt", weights_only=True)["step"] == 2


class SigtermInsideStep2(Callback):
    """Patches the G loss (once the GANStep exists) to send SIGTERM during generator step 2."""

    def on_fit_start(self, trainer):
        real_g_loss = trainer.gan.g_loss_fn

        def g_loss(logits_fake):
            if trainer.step == 1:  # inside generator step 2
                os.kill(os.getpid(), signal.SIGTERM)
            return real_g_loss(logits_fake)

        trainer.gan.g_loss_fn = g_loss


def test_sigterm_inside_a_step_finishes_the_step_then_stops(npz_data, tmp_path, reference_run):
    out = tmp_path / "run"
    trainer = Trainer(make_cfg(npz_data, out, steps=6), callbacks=[SigtermInsideStep2()])
    with pytest.raises(KeyboardInterrupt, match=r"step 2 of 6"):
        trainer.fit()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers restored
    assert torch.load(out / "checkpoints/last.pt", weights_only=True)["step"] == 2
    Trainer(make_cfg(npz_data, out, steps=6, resume=True)).fit()
    assert_same_tensors(out / "generator.safetensors", reference_run / "generator.safetensors")


def test_cli_exits_130_with_resume_message(monkeypatch, capsys):
    from ganaug import cli
    from ganaug.training import Trainer as T

    def fit(self):
        raise KeyboardInterrupt("Interrupted at step 4; resume with resume=True")

    monkeypatch.setattr(T, "fit", fit)
    assert cli.main(["train", "--data", "digits", "--steps", "5"]) == 130
    assert "resume with --resume" in capsys.readouterr().err


# -- divergence and user errors ---------------------------------------------------------------
def test_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(npz_data, tmp_path):
    out = tmp_path / "run"
    saved = {}

    class PoisonAfterStep3(Callback):
        def on_step_end(self, trainer, losses):
            if trainer.step == 3:  # the step-2 checkpoint exists now
                saved["ckpt"] = (out / "checkpoints/last.pt").read_bytes()
                saved["gen"] = (out / "generator.safetensors").read_bytes()
                real = trainer.gan.g_loss_fn
                trainer.gan.g_loss_fn = lambda logits: real(logits) * float("nan")

    trainer = Trainer(make_cfg(npz_data, out, steps=6, ckpt_every=2),
                      callbacks=[PoisonAfterStep3()])
    with pytest.raises(GanaugTrainingError,
                       match=r"generator loss became NaN/Inf at generator step 4.*last good "
                             r"checkpoint.*lower learning rate.*R1"):
        trainer.fit()
    assert (out / "checkpoints/last.pt").read_bytes() == saved["ckpt"]
    assert (out / "generator.safetensors").read_bytes() == saved["gen"]
    ckpt = torch.load(out / "checkpoints/last.pt", weights_only=True)
    assert ckpt["step"] == 2
    assert all(torch.isfinite(v).all() for v in ckpt["G"].values() if v.is_floating_point())


def test_dataset_smaller_than_a_batch(npz_data, tmp_path):
    with pytest.raises(GanaugDataError, match=r"48 images.*fewer than one batch of 64.*batch_size=24"):
        Trainer(make_cfg(npz_data, tmp_path / "run", batch_size=64)).fit()


def test_out_of_range_label(npz_data, tmp_path):
    from ganaug.data import load_data

    data = load_data(npz_data)
    data.labels = data.labels.clone()
    data.labels[0] = 7
    with pytest.raises(GanaugDataError, match=r"Labels range over \[0, 7\].*3 classes"):
        Trainer(make_cfg(npz_data, tmp_path / "run"), data=data).fit()


def test_image_size_the_arch_cannot_make(npz_data, tmp_path):
    with pytest.raises(GanaugConfigError, match=r"cannot make 20x20.*nearest.*image_size=28\b"):
        Trainer(make_cfg(npz_data, tmp_path / "run", image_size=20)).fit()


@pytest.mark.parametrize("extra", [
    {"loss": "ns", "r1_gamma": 1.0},
    {"loss": "wgan-gp", "d_steps": 1},
    {"loss": "hinge", "lecam_weight": 0.3, "ada": True},
])
def test_losses_and_regularisers_train_finite(npz_data, tmp_path, extra):
    out = tmp_path / "run"
    Trainer(make_cfg(npz_data, out, steps=2, **extra)).fit()
    record = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert np.isfinite(record["loss_d"]) and np.isfinite(record["loss_g"])
    if extra.get("ada"):
        assert 0.0 <= record["ada_p"] <= 1.0
        assert torch.load(out / "checkpoints/last.pt", weights_only=True)["ada"]["last_rt"] is not None


def test_dataloader_workers_give_the_same_run(npz_data, tmp_path, reference_run):
    out = tmp_path / "run"
    Trainer(make_cfg(npz_data, out, steps=6, num_workers=1)).fit()
    assert_same_tensors(out / "generator.safetensors", reference_run / "generator.safetensors")


def test_resume_is_bit_exact_with_ada_lecam_and_r1(npz_data, tmp_path):
    extra = {"ada": True, "lecam_weight": 0.3, "r1_gamma": 1.0, "loss": "ns"}
    one, two = tmp_path / "one", tmp_path / "two"
    Trainer(make_cfg(npz_data, one, steps=4, **extra)).fit()
    Trainer(make_cfg(npz_data, two, steps=2, **extra)).fit()
    Trainer(make_cfg(npz_data, two, steps=4, resume=True, **extra)).fit()
    assert_same_tensors(one / "generator.safetensors", two / "generator.safetensors")
    a = torch.load(one / "checkpoints/last.pt", weights_only=True)
    b = torch.load(two / "checkpoints/last.pt", weights_only=True)
    assert a["ada"] == b["ada"] and a["lecam"] == b["lecam"]
    assert a["lecam"]["real"] != 0.0  # the LeCam anchors moved


def test_hooks_appended_after_construction_run_too(npz_data, tmp_path):
    seen = []
    trainer = Trainer(make_cfg(npz_data, tmp_path / "run", steps=2))
    trainer.hooks.append(lambda tr, step: seen.append((step, tr.in_step)))
    trainer.fit()
    assert seen == [(1, False), (2, False)]


def test_setup_builds_the_run_and_writes_nothing(npz_data, tmp_path):
    out = tmp_path / "run"
    trainer = Trainer(make_cfg(npz_data, out))
    trainer.setup()
    losses = trainer.train_step()
    assert trainer.step == 1 and sorted(losses) == ["d_fake", "d_real", "loss_d", "loss_g"]
    assert all(v.dim() == 0 for v in losses.values())
    assert not out.exists()


def test_a_non_callback_is_refused(npz_data, tmp_path):
    with pytest.raises(GanaugConfigError, match=r"Callback instances, got function"):
        Trainer(make_cfg(npz_data, tmp_path / "run"), callbacks=[lambda trainer: None])


# -- train_or_resume --------------------------------------------------------------------------
def test_train_or_resume_trains_then_returns_at_once_when_finished(npz_data, tmp_path,
                                                                   monkeypatch, reference_run):
    out = tmp_path / "run"
    path = train_or_resume(make_cfg(npz_data, out, steps=6))
    assert path == out / "generator.safetensors"
    assert_same_tensors(path, reference_run / "generator.safetensors")

    def boom(self):
        raise AssertionError("trained a finished run again")

    monkeypatch.setattr(Trainer, "fit", boom)
    assert train_or_resume(make_cfg(npz_data, out, steps=6)) == path
    # steps None: finished at the run's own total
    assert train_or_resume(make_cfg(npz_data, out, steps=None)) == path


def test_train_or_resume_resumes_a_started_run_exactly(npz_data, tmp_path, reference_run):
    out = tmp_path / "run"
    Trainer(make_cfg(npz_data, out, steps=3)).fit()
    train_or_resume(make_cfg(npz_data, out, steps=6))  # no resume=True needed
    assert_same_tensors(out / "generator.safetensors", reference_run / "generator.safetensors")


# -- run folders never lose work (issue 12, point 4) -----------------------------------------
def test_new_run_refuses_a_folder_with_a_finished_model(npz_data, tmp_path):
    out = tmp_path / "run"
    Trainer(make_cfg(npz_data, out, steps=1)).fit()
    (out / "checkpoints" / "last.pt").unlink()  # a finished run, checkpoints cleaned away
    model = (out / "generator.safetensors").read_bytes()
    metrics = (out / "metrics.jsonl").read_text()
    with pytest.raises(GanaugTrainingError,
                       match=r"already holds files \(.*generator.safetensors.*\).*another out="):
        Trainer(make_cfg(npz_data, out, steps=2, seed=9)).fit()
    assert (out / "generator.safetensors").read_bytes() == model
    assert (out / "metrics.jsonl").read_text() == metrics


def test_new_run_refuses_the_dataset_folder_and_a_file(npz_data, tmp_path):
    dataset = tmp_path / "images"
    (dataset / "cat").mkdir(parents=True)
    (dataset / "cat" / "1.png").write_bytes(b"x")
    with pytest.raises(GanaugTrainingError, match=r"already holds files \(cat\)"):
        Trainer(make_cfg(npz_data, dataset)).fit()
    assert sorted(p.name for p in dataset.iterdir()) == ["cat"]
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    with pytest.raises(GanaugTrainingError, match=r"notes.txt' is a file, not a folder"):
        Trainer(make_cfg(npz_data, a_file)).fit()
    assert a_file.read_text() == "mine"


def test_a_refused_run_leaves_its_folder_free_for_the_corrected_command(npz_data, tmp_path):
    # Refusals found while building the networks (here an arch_kwargs key no network takes)
    # come before config.yaml is written: the retry into the same --out is not refused.
    out = tmp_path / "run"
    with pytest.raises(GanaugConfigError, match=r"arch_kwargs \['widht'\]"):
        Trainer(make_cfg(npz_data, out, arch_kwargs={"widht": 8})).fit()
    assert not out.exists()
    Trainer(make_cfg(npz_data, out, steps=1)).fit()
    assert (out / "generator.safetensors").is_file()


def test_a_refused_run_leaves_no_folder_it_made_and_keeps_the_users(npz_data, tmp_path):
    # A refusal after --out was created (bad data, a key no network takes) left an empty
    # folder, and its parents, behind; a folder the user made stays, empty as it was.
    empty_class = tmp_path / "images"
    (empty_class / "a").mkdir(parents=True)
    made = tmp_path / "new" / "deeper" / "run"
    with pytest.raises(GanaugDataError, match="no images"):
        Trainer(make_cfg(f"folder:{empty_class}", made)).fit()
    assert not (tmp_path / "new").exists()
    with pytest.raises(GanaugConfigError, match=r"arch_kwargs \['widht'\]"):
        Trainer(make_cfg(npz_data, made, arch_kwargs={"widht": 8})).fit()
    assert not (tmp_path / "new").exists()
    mine = tmp_path / "mine"
    mine.mkdir()
    with pytest.raises(GanaugDataError, match="no images"):
        Trainer(make_cfg(f"folder:{empty_class}", mine / "run")).fit()
    assert mine.is_dir() and not any(mine.iterdir())


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_unwritable_out_is_refused(npz_data, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(GanaugTrainingError, match=r"cannot write.*another out="):
            Trainer(make_cfg(npz_data, locked / "run")).fit()
    finally:
        locked.chmod(0o700)


def test_temp_files_of_a_killed_save_are_ignored_and_removed(npz_data, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    stale = out / ".generator.safetensors.k2j3h4ab.tmp"
    stale.write_bytes(b"half a model")
    Trainer(make_cfg(npz_data, out, steps=1)).fit()
    assert not stale.exists()
    ckpt_tmp = out / "checkpoints" / ".last.pt.abc123de.tmp"
    ckpt_tmp.write_bytes(b"half")
    Trainer(make_cfg(npz_data, out, steps=2, resume=True)).fit()
    assert not ckpt_tmp.exists()


def test_metrics_survive_a_torn_last_line(tmp_path):
    run = RunDir(tmp_path / "run")
    run.append_metrics({"step": 1, "loss_d": 0.5})
    with open(run.metrics_path, "a") as f:
        f.write('{"step": 2, "loss')  # the process was killed mid-write
    assert run.read_metrics() == [{"step": 1, "loss_d": 0.5}]
    run.append_metrics({"step": 2, "loss_d": 0.4})
    assert run.read_metrics() == [{"step": 1, "loss_d": 0.5}, {"step": 2, "loss_d": 0.4}]
    run.trim_metrics(5)
    lines = run.metrics_path.read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == [1, 2]


def test_train_or_resume_refuses_to_replace_a_model_of_other_data(npz_data, tmp_path):
    from ganaug.data import load_data

    out = tmp_path / "run"
    data = load_data(npz_data)
    train_or_resume(make_cfg(npz_data, out, steps=1), data=data)
    (out / "checkpoints" / "last.pt").unlink()
    model = (out / "generator.safetensors").read_bytes()
    other = type(data)(255 - data.images, data.labels, data.classes, "inverted", "")
    with pytest.raises(GanaugTrainingError, match=r"already holds files"):
        train_or_resume(make_cfg(npz_data, out, steps=1), data=other)
    assert (out / "generator.safetensors").read_bytes() == model
    # the finished run itself is still reused as is
    assert train_or_resume(make_cfg(npz_data, out, steps=1), data=data) == out / "generator.safetensors"


# -- absurd sizes are refused before anything is allocated (issue 12, point 6) ----------------
def test_absurd_width_or_class_count_is_refused_before_allocating(npz_data, tmp_path):
    from ganaug.data import load_data

    with pytest.raises(GanaugConfigError, match=r"generator of this run would have .* parameters.*cap"):
        Trainer(make_cfg(npz_data, tmp_path / "a", arch_kwargs={"width": 10**6})).fit()
    data = load_data(npz_data)
    many = type(data)(data.images, data.labels, [f"c{i}" for i in range(10**8)], "many", "")
    with pytest.raises(GanaugConfigError, match=r"discriminator of this run would have.*cap"):
        Trainer(make_cfg(npz_data, tmp_path / "b"), data=many).fit()


def test_absurd_size_is_refused_before_loading_data(npz_data, tmp_path, monkeypatch):
    import ganaug.training.trainer as trainer_module

    monkeypatch.setattr(trainer_module, "load_data", lambda *a, **k: pytest.fail("loaded data"))
    with pytest.raises(GanaugConfigError, match=r"Arch 'dcgan' cannot make 100000x100000 images "
                                                r"\(image_size=100000\); it supports "
                                                r"sizes 16, 28, 32, 64"):
        Trainer(make_cfg(npz_data, tmp_path / "run", image_size=100000)).fit()


# -- training on the user's own torch Dataset (issue 14, point 5) -----------------------------
@pytest.fixture
def pet_folder(tmp_path) -> Path:
    """An ImageFolder of 3 classes x 4 PNGs of mixed sizes, class k at brightness 40 + 80k."""
    from PIL import Image

    for k, name in enumerate(["cat", "dog", "fox"]):
        (tmp_path / "pets" / name).mkdir(parents=True)
        for i in range(4):
            side = 20 + 4 * i
            Image.new("RGB", (side, side), (40 + 80 * k,) * 3).save(
                tmp_path / "pets" / name / f"{i}.png")
    return tmp_path / "pets"


def test_trainer_reads_an_imagefolder_and_a_subset(pet_folder, tmp_path):
    from torch.utils.data import Subset
    from torchvision.datasets import ImageFolder

    from ganaug.io import read_metadata
    from ganaug.training.dataset_input import images_from_dataset

    ds = ImageFolder(pet_folder)
    data = images_from_dataset(ds, size=16)
    assert data.images.shape == (12, 3, 16, 16) and data.classes == ["cat", "dog", "fox"]
    assert data.images.float().mean((1, 2, 3)).tolist() == pytest.approx(
        [40.0] * 4 + [120.0] * 4 + [200.0] * 4, abs=1)
    out = tmp_path / "run"
    trainer = Trainer(make_cfg("pets", out, steps=1, image_size=16, batch_size=4, d_steps=1),
                      data=ds)
    trainer.fit()
    assert trainer.data.classes == ["cat", "dog", "fox"]
    assert read_metadata(out / "generator.safetensors")["class_names"] == ["cat", "dog", "fox"]
    sub = images_from_dataset(Subset(ds, [0, 5, 11]), size=16, channels=1)
    assert sub.images.shape == (3, 1, 16, 16) and sub.labels.tolist() == [0, 1, 2]
    assert sub.classes == ["cat", "dog", "fox"]


def test_dataset_of_tensors_with_class_to_idx(tmp_path):
    from ganaug.training.dataset_input import images_from_dataset

    class Floats(torch.utils.data.Dataset):
        class_to_idx = {"b": 1, "a": 0}  # noqa: RUF012

        def __len__(self):
            return 2

        def __getitem__(self, i):
            return torch.full((3, 16, 16), 0.5), torch.tensor(i)

    data = images_from_dataset(Floats())
    assert data.classes == ["a", "b"] and data.image_size == 16
    assert data.images.unique().tolist() == [128]


def test_a_dataset_whose_labels_pass_a_target_transform_is_refused(tmp_path):
    """ImageFolder(target_transform=lambda y: 2 - y): the model file recorded class_to_idx's
    names for labels that meant other classes, so every later use by name drew the wrong one."""
    from torch.utils.data import Subset

    from ganaug.errors import GanaugDataError
    from ganaug.training.dataset_input import images_from_dataset

    class Flipped(torch.utils.data.Dataset):
        classes = ["a", "b", "c"]  # noqa: RUF012

        def __init__(self, target_transform=None):
            self.target_transform = target_transform

        def __len__(self):
            return 3

        def __getitem__(self, i):
            y = i if self.target_transform is None else self.target_transform(i)
            return torch.full((3, 16, 16), 0.5), y

    for ds in (Flipped(lambda y: 2 - y), Subset(Flipped(lambda y: 2 - y), [0, 1])):
        with pytest.raises(GanaugDataError, match=r"target_transform.*names the labels before"):
            images_from_dataset(ds)
    assert images_from_dataset(Flipped()).classes == ["a", "b", "c"]  # None is no transform
    # one that returns every label unchanged keeps the names true (it was refused too)
    assert images_from_dataset(Flipped(lambda y: y)).classes == ["a", "b", "c"]


def test_datasets_without_labels_or_class_names_are_refused(tmp_path):
    from ganaug.errors import GanaugDataError
    from ganaug.training.dataset_input import images_from_dataset

    images = torch.zeros(4, 3, 16, 16)
    with pytest.raises(GanaugDataError, match=r"TensorDataset does not tell its class names.*"
                                              r"Set dataset.classes"):
        images_from_dataset(torch.utils.data.TensorDataset(images, torch.zeros(4)))

    class NoLabels(torch.utils.data.Dataset):
        classes = ["a", "b"]  # noqa: RUF012

        def __len__(self):
            return 4

        def __getitem__(self, i):
            return images[i]

    with pytest.raises(GanaugDataError, match=r"item 0 of NoLabels is a Tensor, not an "
                                              r"\(image, label\) pair"):
        images_from_dataset(NoLabels())

    class Normalised(NoLabels):
        def __getitem__(self, i):
            return images[i] - 1.0, 0

    with pytest.raises(GanaugDataError, match=r"float image must be in \[0, 1\].*Normalize"):
        images_from_dataset(Normalised())


def test_resume_is_bit_exact_with_bcr(npz_data, tmp_path):
    extra = {"cr_weight": 10.0, "diffaug": "translation"}
    one, two, off = tmp_path / "one", tmp_path / "two", tmp_path / "off"
    Trainer(make_cfg(npz_data, one, steps=4, **extra)).fit()
    Trainer(make_cfg(npz_data, two, steps=2, **extra)).fit()
    Trainer(make_cfg(npz_data, two, steps=4, resume=True, **extra)).fit()
    assert_same_tensors(one / "generator.safetensors", two / "generator.safetensors")
    assert "cr_weight: 10.0" in (two / "config.yaml").read_text()
    Trainer(make_cfg(npz_data, off, steps=4, diffaug="translation")).fit()
    with pytest.raises(AssertionError):  # bCR changed the run
        assert_same_tensors(one / "generator.safetensors", off / "generator.safetensors")


@pytest.mark.parametrize("step", [-5, 2.5, True, "7"])
def test_a_checkpoint_step_that_is_no_count_does_not_fit(tmp_path, step):
    """An edited checkpoint with step -5 resumed and counted from -5 (more steps than asked,
    noise streams seeded from a negative step); 2.5 and True were truncated silently."""
    from types import SimpleNamespace

    run = RunDir(tmp_path)
    run.register(SimpleNamespace(state_dict=dict,
                                 load_state_dict=lambda s: Trainer.load_state_dict(
                                     SimpleNamespace(), s)))
    with pytest.raises(GanaugTrainingError, match=r"does not fit this run.*step"):
        run.restore({"format": 1, "step": step, "wall_time_s": 1.0})


def test_a_concatdataset_of_parts_with_one_class_list_trains(pet_folder, tmp_path):
    """Training refused every ConcatDataset ("does not tell its class names"), even two
    ImageFolders of the same classes, while the augment entry points read its parts' names."""
    import numpy as np
    from torch.utils.data import ConcatDataset
    from torchvision.datasets import ImageFolder

    from ganaug.errors import GanaugDataError
    from ganaug.training.dataset_input import images_from_dataset

    both = ConcatDataset([ImageFolder(pet_folder), ImageFolder(pet_folder)])
    data = images_from_dataset(both, size=16)
    assert data.classes == ["cat", "dog", "fox"] and data.images.shape == (24, 3, 16, 16)
    assert data.labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4 + [0] * 4 + [1] * 4 + [2] * 4
    (tmp_path / "other" / "cat").mkdir(parents=True)
    (pet_folder / "cat" / "0.png").rename(tmp_path / "other" / "cat" / "0.png")
    (tmp_path / "other" / "emu").mkdir()
    (pet_folder / "dog" / "0.png").rename(tmp_path / "other" / "emu" / "0.png")
    mixed = ConcatDataset([ImageFolder(pet_folder), ImageFolder(tmp_path / "other")])
    with pytest.raises(GanaugDataError, match="other class names"):
        images_from_dataset(mixed, size=16)

    class Arrays(torch.utils.data.Dataset):  # a label encoder's classes_ is a numpy array
        classes = np.array(["b", "a"])

        def __len__(self):
            return 2

        def __getitem__(self, i):
            return torch.full((3, 8, 8), 0.5), i

    assert images_from_dataset(Arrays()).classes == ["b", "a"]
    assert images_from_dataset(ConcatDataset([Arrays(), Arrays()])).classes == ["b", "a"]


def test_class_names_given_twice_are_refused():
    """classes = ["a", "a", "b"] trained silently into a model file naming two classes "a",
    so every later lookup by name drew one of them for both labels."""
    from ganaug.errors import GanaugDataError
    from ganaug.training.dataset_input import images_from_dataset

    class Twice(torch.utils.data.Dataset):
        classes = ["a", "a", "b"]  # noqa: RUF012

        def __len__(self):
            return 3

        def __getitem__(self, i):
            return torch.full((3, 8, 8), 0.5), i

    with pytest.raises(GanaugDataError, match=r"Twice.classes names 'a' more than once"):
        images_from_dataset(Twice())


def test_a_class_to_idx_with_labels_that_are_not_ints_is_refused():
    from ganaug.errors import GanaugDataError
    from ganaug.training.dataset_input import images_from_dataset

    class Words(torch.utils.data.Dataset):
        class_to_idx = {"a": "zero", "b": "one"}  # noqa: RUF012

        def __len__(self):
            return 2

        def __getitem__(self, i):
            return torch.full((3, 8, 8), 0.5), i

    with pytest.raises(GanaugDataError, match=r"Words.class_to_idx maps a class name to "
                                              r"something that is not an int label"):
        images_from_dataset(Words())


# -- AMP on the CPU: bf16 autocast where the CPU computes bf16 natively ----------------------
def test_amp_settings_on_the_cpu_follow_native_bf16(monkeypatch):
    from ganaug.training import step

    cpu = torch.device("cpu")
    monkeypatch.setattr(step, "cpu_has_native_bf16", lambda: True)
    assert step.amp_settings(cpu, True) == (True, torch.bfloat16, False)
    assert step.amp_settings(cpu, False) == (False, None, False)
    monkeypatch.setattr(step, "cpu_has_native_bf16", lambda: False)  # emulated bf16 is slower
    assert step.amp_settings(cpu, True) == (False, None, False)


@pytest.mark.skipif(not cpu_has_native_bf16(),
                    reason="this CPU has no native bf16 (AVX512-BF16 or AMX)")
def test_amp_on_the_cpu_trains_in_bf16_and_resumes_exactly(npz_data, tmp_path):
    # --amp did nothing on the CPU; on a CPU with native bf16 autocast makes a step 1.3-1.5x
    # faster (docs/performance.md). Its results are deterministic, so resume stays exact.
    ref = tmp_path / "ref"
    trainer = Trainer(make_cfg(npz_data, ref, steps=4, amp=True))
    summary = trainer.fit()
    assert trainer.gan.autocast and trainer.gan.amp_dtype == torch.bfloat16
    assert summary["steps"] == 4
    out = tmp_path / "run"
    Trainer(make_cfg(npz_data, out, steps=2, amp=True)).fit()
    Trainer(make_cfg(npz_data, out, steps=4, amp=True, resume=True)).fit()
    assert_same_tensors(out / "generator.safetensors", ref / "generator.safetensors")
    fp32 = tmp_path / "fp32"
    Trainer(make_cfg(npz_data, fp32, steps=4)).fit()
    with pytest.raises(AssertionError):  # autocast did change the arithmetic
        assert_same_tensors(fp32 / "generator.safetensors", ref / "generator.safetensors")


def test_non_square_images_are_refused_before_anything_is_written(tmp_path, capsys, monkeypatch):
    # A folder of 32x16 images without --size trained into a raw torch RuntimeError at the first
    # D step ("Sizes of tensors must match": fakes are 16x16), leaving config.yaml behind.
    from ganaug.cli import main

    x = np.random.default_rng(0).integers(0, 256, (12, 16, 32, 3), dtype=np.uint8)
    path = tmp_path / "wide.npz"
    np.savez(path, x=x, y=np.arange(12) % 2)
    with pytest.raises(GanaugDataError, match=r"32x16 \(width x height\), not square.*image_size=32"):
        Trainer(make_cfg(f"npz:{path}", tmp_path / "run")).fit()
    assert not (tmp_path / "run").exists()
    from ganaug.data import load_data

    with pytest.raises(GanaugDataError, match=r"not square"):
        Trainer(make_cfg("given", tmp_path / "run"), data=load_data(f"npz:{path}")).fit()
    assert main(["train", "--data", f"npz:{path}", "--steps", "1", "--batch", "2",
                 "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "not square" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()
    _skip_pictures(monkeypatch)
    trainer = Trainer(make_cfg(f"npz:{path}", tmp_path / "run", image_size=16, steps=1))
    trainer.fit()  # with --size the stretched images train
    assert trainer.data.images.shape[1:] == (3, 16, 16)

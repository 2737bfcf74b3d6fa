"""Tests of ganaug.training.run_dir: the checkpoint built from registered objects, the resume
guard, metrics.jsonl, the model file and the per-rank RNG state."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from ganaug.config import TrainConfig
from ganaug.data import LabeledImages
from ganaug.errors import GanaugTrainingError
from ganaug.training import RunDir
from ganaug.training.distributed import DistInfo
from ganaug.training.run_dir import RankRNG, rng_state, set_rng_state


class Counter:
    """A stateful object owning the key ``count``."""

    def __init__(self, count: int = 0) -> None:
        self.count = count

    def state_dict(self):
        return {"count": self.count, "weights": torch.full((2,), float(self.count))}

    def load_state_dict(self, state):
        self.count = state["count"]


class Other:
    def __init__(self) -> None:
        self.seen = None

    def state_dict(self):
        return {"other": [1, 2]}

    def load_state_dict(self, state):
        self.seen = dict(state)


def test_checkpoint_is_the_union_of_registered_states_and_restores_each(tmp_path):
    run = RunDir(tmp_path / "run")
    run.register(Counter(7), Other())
    assert not run.has_checkpoint()
    assert run.save_checkpoint() == tmp_path / "run" / "checkpoints" / "last.pt"
    raw = torch.load(run.ckpt_path, weights_only=True)
    assert set(raw) == {"format", "count", "weights", "other"} and raw["format"] == 1
    fresh = RunDir(tmp_path / "run")
    counter, other = Counter(), Other()
    fresh.register(counter, other)
    fresh.restore(fresh.load_checkpoint())
    assert counter.count == 7 and other.seen["other"] == [1, 2]
    assert list(run.ckpt_path.parent.iterdir()) == [run.ckpt_path]  # no temp file left


def test_two_objects_claiming_one_key_are_refused(tmp_path):
    run = RunDir(tmp_path)
    run.register(Counter(), Counter())
    with pytest.raises(GanaugTrainingError, match=r"Counter.state_dict\(\) repeats the "
                                                  r"checkpoint keys \['count', 'weights'\]"):
        run.save_checkpoint()


def test_only_rank_0_writes(tmp_path):
    run = RunDir(tmp_path / "run", dist=DistInfo(rank=1, world=2))
    run.register(Counter(1))
    run.save_checkpoint()
    run.append_metrics({"step": 1})
    run.write_config(TrainConfig(data="digits"))
    assert not (tmp_path / "run").exists()


def test_load_checkpoint_errors(tmp_path):
    run = RunDir(tmp_path)
    with pytest.raises(GanaugTrainingError, match=r"No checkpoint at .*drop resume=True"):
        run.load_checkpoint()
    run.ckpt_path.parent.mkdir()
    run.ckpt_path.write_bytes(b"not a checkpoint")
    with pytest.raises(GanaugTrainingError, match=r"(?s)Cannot read the checkpoint .*damaged"):
        run.load_checkpoint()
    torch.save({"format": 99}, run.ckpt_path)
    with pytest.raises(GanaugTrainingError, match=r"not a ganaug checkpoint of format 1"):
        run.load_checkpoint()


def test_refuse_overwrite_only_when_a_checkpoint_exists(tmp_path):
    run = RunDir(tmp_path)
    run.refuse_overwrite()
    run.register(Counter())
    run.save_checkpoint()
    with pytest.raises(GanaugTrainingError, match=r"already holds a run.*resume=True"):
        run.refuse_overwrite()


def test_saved_config_prefers_config_yaml_over_the_checkpoint_copy(tmp_path):
    run = RunDir(tmp_path)
    ckpt = {"config": {"data": "from-checkpoint"}}
    assert run.saved_config(ckpt) == {"data": "from-checkpoint"}
    run.write_config(TrainConfig(data="digits", steps=5))
    saved = run.saved_config(ckpt)
    assert saved["data"] == "digits" and saved["steps"] == 5


def _data(num_classes: int) -> LabeledImages:
    return LabeledImages(torch.zeros(4, 1, 16, 16, dtype=torch.uint8),
                         torch.arange(4) % num_classes, [str(k) for k in range(num_classes)], "t")


def test_check_resume_refuses_arch_changes_and_notes_the_rest(tmp_path):
    run = RunDir(tmp_path)
    saved = TrainConfig(data="d", arch="dcgan", z_dim=16, lr_g=1e-4).to_dict()
    ckpt = {"num_classes": 2, "data_fingerprint": "abc"}
    now = TrainConfig(data="d", arch="dcgan", z_dim=16, lr_g=2e-4, steps=9)
    notes = run.check_resume(now, _data(2), ckpt, saved, fingerprint="abc")
    assert notes == ["note: resuming with changed settings: lr_g"]
    with pytest.raises(GanaugTrainingError, match=r"training data differ from the checkpoint's"):
        run.check_resume(now, _data(2), ckpt, saved, fingerprint="xyz")
    assert run.check_resume(now, _data(2), ckpt, {**saved, "lr_g": 2e-4}, "abc") == []
    with pytest.raises(GanaugTrainingError, match=r"architecture changed.*\n  z_dim: 16 "
                                                  r"\(checkpoint\) -> 8 \(now\)\n  num_classes: 2 "
                                                  r"\(checkpoint\) -> 3"):
        run.check_resume(TrainConfig(data="d", arch="dcgan", z_dim=8), _data(3), ckpt, saved, "")


def test_check_resume_refuses_other_class_names_of_the_same_count(tmp_path):
    # Same count, other names: the class embeddings would silently change meaning.
    run = RunDir(tmp_path)
    saved = TrainConfig(data="d", arch="dcgan", z_dim=16).to_dict()
    ckpt = {"num_classes": 2, "classes": ["cat", "dog"], "data_fingerprint": "abc"}
    now = TrainConfig(data="d", arch="dcgan", z_dim=16)
    with pytest.raises(GanaugTrainingError, match=r"classes: \['cat', 'dog'\] \(checkpoint\) "
                                                  r"-> \['0', '1'\] \(now, from the data\)"):
        run.check_resume(now, _data(2), ckpt, saved, "abc")
    same = {**ckpt, "classes": ["0", "1"]}
    assert run.check_resume(now, _data(2), same, saved, "abc") == []


def test_check_resume_compares_the_checkpoint_config_not_only_config_yaml(tmp_path):
    # config.yaml edited by hand (or a checkpoint copied from another run): the weights follow
    # the checkpoint's own config, so its architecture is what the resume must keep.
    run = RunDir(tmp_path)
    edited = TrainConfig(data="d", arch="dcgan", z_dim=16, arch_kwargs={"width": 16}).to_dict()
    ckpt = {"num_classes": 2, "data_fingerprint": "abc",
            "config": TrainConfig(data="d", arch="dcgan", z_dim=16,
                                  arch_kwargs={"width": 8}).to_dict()}
    now = TrainConfig(data="d", arch="dcgan", z_dim=16, arch_kwargs={"width": 16})
    with pytest.raises(GanaugTrainingError, match=r"arch_kwargs: \{'width': 8\} \(checkpoint\) "
                                                  r"-> \{'width': 16\} \(now\)"):
        run.check_resume(now, _data(2), ckpt, edited, "abc")


@pytest.mark.parametrize("ckpt", [{}, {"num_classes": "2"}, {"num_classes": True}])
def test_check_resume_refuses_a_checkpoint_without_its_class_count(tmp_path, ckpt):
    run = RunDir(tmp_path)
    saved = TrainConfig(data="d").to_dict()
    with pytest.raises(GanaugTrainingError, match=r"damaged.*num_classes"):
        run.check_resume(TrainConfig(data="d"), _data(2), ckpt, saved, "abc")


def test_saved_config_of_a_checkpoint_without_config_is_refused(tmp_path):
    run = RunDir(tmp_path)
    for ckpt in ({}, {"config": "steps: 3"}):
        with pytest.raises(GanaugTrainingError, match=r"damaged.*no config"):
            run.saved_config(ckpt)


class Strict:
    """Loads like a torch module: a missing key or another shape raises."""

    def state_dict(self):
        return {"w": torch.zeros(3)}

    def load_state_dict(self, state):
        torch.nn.Linear(3, 1).load_state_dict({"weight": state["w"], "bias": torch.zeros(1)})


@pytest.mark.parametrize("state", [{"format": 1}, {"format": 1, "w": torch.zeros(5)}])
def test_restore_of_a_checkpoint_that_does_not_fit_is_a_training_error(tmp_path, state):
    run = RunDir(tmp_path)
    run.register(Strict())
    with pytest.raises(GanaugTrainingError, match=r"(?s)does not fit this run.*Strict.*another out="):
        run.restore(state)


def test_metrics_append_read_and_trim(tmp_path):
    run = RunDir(tmp_path / "run")
    assert run.read_metrics() == []
    for step in (1, 2, 3):
        run.append_metrics({"step": step, "loss_d": step / 10})
    assert [r["loss_d"] for r in run.read_metrics()] == [0.1, 0.2, 0.3]
    run.trim_metrics(2)
    assert run.read_metrics() == [{"step": 1, "loss_d": 0.1}, {"step": 2, "loss_d": 0.2}]


def test_metrics_lines_with_a_damaged_step_are_skipped_not_a_traceback(tmp_path):
    # an edited or damaged metrics.jsonl ended `--resume` in a raw TypeError ('<=' between str
    # and int) from trim_metrics, after the networks were built; the loss plot of a sample step
    # would plot text
    from ganaug.plots import save_loss_plot

    run = RunDir(tmp_path / "run")
    run.append_metrics({"step": 1, "loss_d": 0.5})
    with open(run.metrics_path, "a") as f:
        f.writelines(f'{{"step": {step}, "loss_d": 0.1}}\n'
                     for step in ('"x"', "null", "[1]", "true", "2.5", "-1"))
        f.write('{"step": 2, "loss_d": "abc", "loss_g": 0.25}\n')
    run.append_metrics({"step": 9, "loss_d": 0.5})
    assert [r["step"] for r in run.read_metrics()] == [1, 2, 9]
    run.trim_metrics(5)
    assert [r["step"] for r in run.read_metrics()] == [1, 2]
    assert save_loss_plot(run.read_metrics(), tmp_path / "loss.png").is_file()


def test_write_generator_and_finished(tmp_path, tiny_generator):
    from ganaug.io import read_metadata

    run = RunDir(tmp_path)
    assert not run.finished(3, lambda: "fp")
    summary = {"steps": 3, "data_fingerprint": "fp", "config": {"steps": 3}}
    assert run.write_generator(tiny_generator, summary) == tmp_path / "generator.safetensors"
    assert read_metadata(run.generator_path)["training"] == summary
    assert run.finished(3, lambda: "fp") and run.finished(None, lambda: "fp")
    assert not run.finished(4, lambda: "fp")
    assert not run.finished(3, lambda: "other data")


def test_rng_state_round_trip_replays_every_stream():
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)
    state = rng_state()
    first = (torch.rand(3), np.random.rand(2), random.random())
    set_rng_state(state)
    again = (torch.rand(3), np.random.rand(2), random.random())
    assert torch.equal(first[0], again[0])
    assert np.array_equal(first[1], again[1]) and first[2] == again[2]


def test_rank_rng_seeds_per_rank_and_reseeds_on_another_world_size():
    notes = []
    one = RankRNG(DistInfo(), seed=3, log=notes.append)
    one.reseed()
    a = torch.rand(2)
    torch.manual_seed(3)
    assert torch.equal(a, torch.rand(2))  # rank 0 of one process uses the seed itself
    rank1 = RankRNG(DistInfo(rank=1, world=2), seed=3)
    rank1.reseed()
    b = torch.rand(2)
    torch.manual_seed(3 + 7919)
    assert torch.equal(b, torch.rand(2)) and not torch.equal(a, b)
    state = one.state_dict()
    assert state["world_size"] == 1 and len(state["rng"]) == 1
    two = RankRNG(DistInfo(rank=1, world=2), seed=3, log=notes.append)
    two.load_state_dict({**state, "step": 4})
    c = torch.rand(2)
    torch.manual_seed(3 + 7919 + 4)
    assert torch.equal(c, torch.rand(2))
    assert "noise streams are reseeded" in notes[0]


def test_only_rank_0_judges_a_new_run_folder(tmp_path):
    """Under torchrun the other ranks would see rank 0's own files (its writability probe,
    config.yaml) as an occupied folder; rank 0's check is the one that counts."""
    out = tmp_path / "run"
    out.mkdir()
    (out / ".write-test").write_bytes(b"ok")  # what rank 0 may be writing at that moment
    RunDir(out, dist=DistInfo(rank=1, world=2)).refuse_overwrite()  # no error on rank 1
    with pytest.raises(GanaugTrainingError, match=r"already holds files \(\.write-test\)"):
        RunDir(out, dist=DistInfo(rank=0, world=2)).refuse_overwrite()


@pytest.mark.parametrize("config", [[1], "steps: 3", 3])
def test_finished_reads_an_edited_training_config_as_not_finished(tmp_path, tiny_generator,
                                                                 config):
    """A run's generator.safetensors whose training.config is no object (edited or damaged)
    ended `ganaug train --out RUN` in a raw AttributeError from RunDir.finished."""
    run = RunDir(tmp_path)
    run.write_generator(tiny_generator, {"steps": 3, "data_fingerprint": "fp", "config": config})
    assert not run.finished(None, lambda: "fp")
    assert run.finished(3, lambda: "fp")  # the steps asked for are recorded: finished


@pytest.mark.parametrize("mine", [".draft.tmp", ".notes.abcd1234.tmp", ".config.yaml.txt.tmp"])
def test_a_refused_new_run_deletes_no_file_of_the_user(tmp_path, mine):
    """`ganaug train --out DIR` on a folder of the user's deleted every `.*.tmp` in it (and in
    its checkpoints/) before refusing the folder: a user's `.draft.tmp` was lost."""
    out = tmp_path / "mine"
    (out / "checkpoints").mkdir(parents=True)
    for path in (out / mine, out / "notes.txt", out / "checkpoints" / mine):
        path.write_text("the user's")
    with pytest.raises(GanaugTrainingError, match=r"already holds files"):
        RunDir(out).refuse_overwrite()
    assert (out / mine).read_text() == (out / "checkpoints" / mine).read_text() == "the user's"
    (out / "notes.txt").unlink()
    (out / "checkpoints" / mine).unlink()
    (out / "checkpoints").rmdir()
    with pytest.raises(GanaugTrainingError, match=r"already holds files \(" + mine.replace(".", r"\.")):
        RunDir(out).refuse_overwrite()  # the user's temp file alone is a file of the user's
    assert (out / mine).read_text() == "the user's"


def test_remove_temp_files_removes_only_what_a_killed_save_of_the_run_left(tmp_path):
    run = RunDir(tmp_path)
    (tmp_path / "checkpoints").mkdir()
    # atomic_path's temp files: ".NAME." + tempfile's 8 random characters + ".tmp"
    ours = [tmp_path / ".generator.safetensors.k2j3h4ab.tmp", tmp_path / ".config.yaml.x_9x_9x_.tmp",
            tmp_path / ".metrics.jsonl.abcdefgh.tmp", tmp_path / ".loss.png.q1w2e3r4.tmp",
            tmp_path / "checkpoints" / ".last.pt.abc123de.tmp"]
    theirs = [tmp_path / ".draft.tmp", tmp_path / ".notes.txt.abc123de.tmp",
              tmp_path / ".config.yaml.txt.tmp", tmp_path / "checkpoints" / ".best.pt.abc123de.tmp",
              tmp_path / ".last.pt.abc123de.tmp"]
    for path in ours + theirs:
        path.write_bytes(b"x")
    assert sorted(run.remove_temp_files()) == sorted(ours)
    assert all(p.exists() for p in theirs) and not any(p.exists() for p in ours)
    with pytest.raises(GanaugTrainingError, match=r"already holds files"):
        run.refuse_overwrite()

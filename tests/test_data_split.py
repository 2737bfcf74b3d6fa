"""Which split a dataset spec loads by default, and the ``--split`` flag of train / evaluate."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest
import torch
from PIL import Image

from ganaug.cli import build_parser, main
from ganaug.data import describe, load_data, spec_with_split
from ganaug.errors import GanaugDataError


def _folder(root, classes=("cat", "dog"), per_class=3, value=0, mode="RGB"):
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            arr = np.full((4, 4, 3), value, dtype=np.uint8)
            Image.fromarray(arr, "RGB").convert(mode).save(root / c / f"{i}.png")
    return root


@pytest.fixture
def split_root(tmp_path):
    _folder(tmp_path / "ds" / "train", per_class=3, value=10)
    _folder(tmp_path / "ds" / "test", per_class=2, value=200)
    return tmp_path / "ds"


def test_folder_with_own_split_loads_train_by_default(split_root):
    data = load_data(f"folder:{split_root}")
    assert len(data) == 6 and int(data.images.max()) == 10  # no test image (value 200) in it
    assert data.spec == f"folder:{split_root}?split=train"
    assert "its own train split" in data.source
    every = load_data(f"folder:{split_root}", split="all")
    assert len(every) == 10 and every.spec == f"folder:{split_root}?split=all"
    assert len(load_data(every.spec)) == 10  # the canonical spec reproduces it


@pytest.mark.parametrize("test_name", ["val", "valid", "validation"])
def test_folder_val_folder_counts_as_the_test_split(tmp_path, test_name):
    _folder(tmp_path / "ds" / "train", per_class=3, value=10)
    _folder(tmp_path / "ds" / test_name, per_class=1, value=200)
    assert len(load_data(f"folder:{tmp_path / 'ds'}")) == 6
    test = load_data(f"folder:{tmp_path / 'ds'}", split="test")
    assert len(test) == 2 and f"{test_name}" in test.source


def test_sources_without_own_split_load_everything_by_default():
    assert len(load_data("digits")) == 1797 and load_data("digits").spec == "digits"
    assert len(load_data("digits", split="all")) == 1797
    assert load_data("digits", split="all").spec == "digits"


def test_npz_with_train_and_test_arrays_is_its_own_split(tmp_path):
    path = tmp_path / "keras.npz"
    x_train = np.full((6, 4, 4), 10, np.uint8)
    x_test = np.full((4, 4, 4), 200, np.uint8)
    np.savez(path, x_train=x_train, y_train=np.array([0, 1] * 3), x_test=x_test,
             y_test=np.array([0, 1] * 2), classes=np.array(["a", "b"]))
    train = load_data(f"npz:{path}")
    assert len(train) == 6 and int(train.images.max()) == 10 and "own train split" in train.source
    assert len(load_data(f"npz:{path}", split="test")) == 4
    assert len(load_data(f"npz:{path}", split="all")) == 10
    assert train.classes == ["a", "b"]


def test_split_values_are_checked():
    with pytest.raises(GanaugDataError, match=r"split must be 'train', 'test' or 'all', got 'val'"):
        load_data("digits", split="val")


def test_spec_with_split():
    assert spec_with_split("mnist5k", "train") == "mnist5k?split=train"
    assert spec_with_split("mnist5k?split=test&seed=2", "all") == "mnist5k?split=all&seed=2"
    assert spec_with_split("mnist5k?split=test", None) == "mnist5k?split=test"
    assert spec_with_split("mnist5k", None) == "mnist5k?split=train"  # train's default


def test_data_info_shows_the_split(split_root, capsys):
    assert main(["data", "info", f"folder:{split_root}"]) == 0
    assert "split:    train (the source's own train split)" in capsys.readouterr().out
    assert main(["data", "info", "digits"]) == 0
    assert "split:    all (every image; the source has no split of its own)" in \
        capsys.readouterr().out
    assert "split:    test (stratified" in describe(load_data("digits", split="test"))
    assert main(["data", "info", f"folder:{split_root}", "--split", "all"]) == 0
    out = capsys.readouterr().out
    assert "split:    all (every split of the source)" in out and "images:   10" in out


class _FakeTrainer:
    """Stands in for training.Trainer: loads the data the run would train on, trains nothing."""

    seen: ClassVar[dict] = {}

    def __init__(self, cfg, **kw):
        self.cfg = cfg

    def fit(self):
        from ganaug.training.trainer import load_training_data

        data = load_training_data(self.cfg)
        _FakeTrainer.seen = {"spec": self.cfg.data, "n": len(data), "max": int(data.images.max())}
        return {"steps": 0, "wall_time_s": 0.0, "out": "x", "generator": "x/g", "final": {}}


@pytest.mark.parametrize("flag, n, spec_tail", [([], 6, "?split=train"),
                                                (["--split", "all"], 10, "?split=all"),
                                                (["--split", "test"], 4, "?split=test")])
def test_cli_train_uses_the_train_split_by_default(split_root, tmp_path, monkeypatch, capsys,
                                                   flag, n, spec_tail):
    import ganaug.training

    monkeypatch.setattr(ganaug.training, "Trainer", _FakeTrainer)
    argv = ["train", "--data", f"folder:{split_root}", "--out", str(tmp_path / "run"), *flag]
    assert main(argv) == 0
    assert _FakeTrainer.seen["spec"] == f"folder:{split_root}{spec_tail}"
    assert _FakeTrainer.seen["n"] == n
    err = capsys.readouterr().err
    assert f"data: folder:{split_root}{spec_tail}" in err


def test_cli_train_default_split_for_a_source_without_one(tmp_path, monkeypatch, capsys):
    import ganaug.training

    monkeypatch.setattr(ganaug.training, "Trainer", _FakeTrainer)
    assert main(["train", "--data", "digits", "--out", str(tmp_path / "run")]) == 0
    assert _FakeTrainer.seen["spec"] == "digits?split=train"
    assert _FakeTrainer.seen["n"] == len(load_data("digits", split="train"))
    assert "stratified" in capsys.readouterr().err


def test_evaluate_parser_has_split():
    args = build_parser().parse_args(["evaluate", "m.safetensors", "--data", "digits",
                                      "--split", "all", "--test", "digits?split=test"])
    assert args.split == "all"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["evaluate", "m", "--data", "digits", "--split", "val"])


def test_evaluate_refuses_a_split_that_overlaps_the_test_images(capsys):
    assert main(["evaluate", "nofile.safetensors", "--data", "digits", "--split", "all"]) == 2
    assert "--split all leaves no held-out test images" in capsys.readouterr().err


# -- hostile spec options ------------------------------------------------------------------------
@pytest.mark.parametrize("spec", ["digits?split=train&split=test", "digits?size=8&seed=1&size=16",
                                  "digits?split=train&split=train"])
def test_an_option_given_twice_is_refused(spec):
    # the last one used to win silently: '?split=train&split=test' trained on the test images
    with pytest.raises(GanaugDataError, match=r"Option '(split|size)' is given twice in dataset "
                                              r"spec .*; give each option once"):
        load_data(spec)
    with pytest.raises(GanaugDataError, match=r"given twice"):
        spec_with_split(spec, None)


@pytest.mark.parametrize("spec, kw", [("digits?holdout=nan", {}), ("digits?holdout=1", {}),
                                      ("digits", {"holdout": float("nan")}),
                                      ("digits", {"holdout": -0.5, "split": "all"})])
def test_a_bad_holdout_is_refused_even_when_no_split_uses_it(spec, kw):
    with pytest.raises(GanaugDataError, match=r"holdout must be a fraction in \(0, 1\)"):
        load_data(spec, **kw)


@pytest.mark.parametrize("holdout, part", [(1e-9, "test"), (0.0001, "test"), (0.999999, "train")])
def test_a_holdout_that_leaves_a_split_without_every_class_is_refused(holdout, part):
    # sklearn's ValueError used to reach the CLI as a traceback
    for split in ("train", "test"):
        with pytest.raises(GanaugDataError, match=rf"holdout={holdout:g} leaves \d+ {part} "
                                                  rf"image\(s\) of 1,797, fewer than the 10 "
                                                  rf"classes.*holdout=0\.2"):
            load_data("digits", split=split, holdout=holdout)


def test_the_holdout_a_refusal_suggests_is_one_that_loads():
    # 5 images of 2 classes: the message said "Use a fraction from 0.4 to 0.6, e.g.
    # holdout=0.2", the refused value itself.
    from ganaug.data import split_indices

    labels = torch.tensor([0, 0, 0, 1, 1])
    with pytest.raises(GanaugDataError, match=r"from 0\.4 to 0\.6, e\.g\. holdout=0\.4\b") as err:
        split_indices(labels, "test", holdout=0.2)
    suggested = float(str(err.value).rsplit("holdout=", 1)[1].split()[0].rstrip(".)"))
    for split in ("train", "test"):
        assert len(set(labels[split_indices(labels, split, holdout=suggested)].tolist())) == 2


def test_cli_tiny_holdout_is_a_clean_error(capsys):
    assert main(["data", "info", "digits?split=test&holdout=1e-9"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ganaug: error: holdout=1e-09 leaves 1 test image(s)")


def test_a_class_too_small_to_split_is_named_with_a_fix_the_cli_takes(tmp_path, capsys):
    # `ganaug train --data folder:DATA` (the train split by default) on a class of one image
    # said "some class has fewer than 2 images (counts [3, 1]) ... use split=None", an option
    # `ganaug train` does not have, without naming the class.
    for k, (name, n) in enumerate((("cat", 3), ("rare dog", 1))):
        (tmp_path / "ds" / name).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(np.full((16, 16, 3), 60 * k + i, np.uint8)).save(
                tmp_path / "ds" / name / f"{i}.png")
    with pytest.raises(GanaugDataError, match=r"class 'rare dog' has 1 image.*at least 2 per "
                                              r"class.*use every image: split='all'\.$"):
        load_data(f"folder:{tmp_path / 'ds'}", split="train")
    assert main(["train", "--data", f"folder:{tmp_path / 'ds'}", "--steps", "1",
                 "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "'rare dog' has 1 image" in err and "use every image: --split all." in err
    assert "split='all'" not in err  # the CLI names its flag, Python its argument
    assert load_data(f"folder:{tmp_path / 'ds'}", split="all").class_counts() == [3, 1]

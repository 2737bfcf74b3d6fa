"""ImageFolder oddities: hidden entries, macOS litter, symlink loops, unreadable folders, splits
whose class folders differ (``ganaug._folders``, through ``load_data("folder:...")``)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from ganaug.cli import main
from ganaug.data import load_data
from ganaug.errors import GanaugDataError


def _folder(root, classes=("a", "b"), per_class=2):
    for k, c in enumerate(classes):
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(np.full((4, 4, 3), 40 * k + i, np.uint8)).save(root / c / f"{i}.png")
    return root


def test_hidden_folders_are_not_classes(tmp_path):
    root = _folder(tmp_path / "ds")
    _folder(root / ".ipynb_checkpoints", classes=("x",), per_class=1)  # a hidden folder with images
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(root / ".thumbs.png")
    data = load_data(f"folder:{root}")
    assert data.classes == ["a", "b"]
    assert data.class_counts() == [2, 2]


def test_macos_litter_is_skipped(tmp_path):
    root = _folder(tmp_path / "ds")
    (root / "a" / "._0.png").write_bytes(b"\x00\x05\x16\x07AppleDouble")  # not an image
    (root / "a" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (root / "__MACOSX" / "a").mkdir(parents=True)
    (root / "__MACOSX" / "a" / "._0.png").write_bytes(b"\x00\x05\x16\x07AppleDouble")
    data = load_data(f"folder:{root}")
    assert data.classes == ["a", "b"] and data.class_counts() == [2, 2]


def test_hidden_sub_folders_of_a_class_are_skipped(tmp_path):
    root = _folder(tmp_path / "ds")
    _folder(root / "a" / ".cache", classes=("deep",), per_class=3)
    assert load_data(f"folder:{root}").class_counts() == [2, 2]


def test_a_symlink_loop_beside_the_classes_is_no_class(tmp_path):
    root = _folder(tmp_path / "ds")
    os.symlink(root / "loop", root / "loop")  # readlink loop: neither file nor folder
    os.symlink(root / "gone", root / "dangling")
    data = load_data(f"folder:{root}")
    assert data.classes == ["a", "b"]


def test_unreadable_sub_folder_is_refused_not_skipped(tmp_path, monkeypatch):
    root = _folder(tmp_path / "ds")
    (root / "a" / "more").mkdir()
    real_scandir = os.scandir

    def scandir(path="."):
        if os.fspath(path).endswith("more"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(GanaugDataError, match=r"Cannot read folder .*more.*Permission denied.*"
                                              r"readable"):
        load_data(f"folder:{root}")


def test_unreadable_dataset_folder_is_refused(tmp_path, monkeypatch):
    root = _folder(tmp_path / "ds")
    real_scandir = os.scandir

    def scandir(path="."):
        if os.fspath(path) == str(root):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(GanaugDataError, match=r"Cannot read folder .*ds.*Permission denied"):
        load_data(f"folder:{root}")


@pytest.mark.parametrize("split", ["train", "test", None])
def test_one_split_alone_is_refused_when_the_splits_have_other_classes(tmp_path, split):
    _folder(tmp_path / "ds" / "train", classes=("a", "b", "c"))
    _folder(tmp_path / "ds" / "test", classes=("b", "c"))  # label 0 would be 'b' here, 'a' there
    with pytest.raises(GanaugDataError, match=r"different class folders.*\['a', 'b', 'c'\] vs "
                                              r"\['b', 'c'\]"):
        load_data(f"folder:{tmp_path / 'ds'}", split=split)


def test_cli_prints_a_folder_problem_without_traceback(tmp_path, capsys):
    _folder(tmp_path / "ds" / "train", classes=("a", "b", "c"))
    _folder(tmp_path / "ds" / "val", classes=("a", "b"))
    assert main(["data", "info", f"folder:{tmp_path / 'ds'}", "--split", "test"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ganaug: error: ") and "different class folders" in err


def test_different_sizes_without_size_stop_decoding_at_the_first_other_size(tmp_path, monkeypatch):
    # every image used to be decoded before the refusal: 1 small then many huge ones filled memory
    import ganaug._sources as sources

    root = tmp_path / "ds"
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(root / "a" / "0.png")
    for i in range(1, 4):
        Image.fromarray(np.zeros((6 + i, 6, 3), np.uint8)).save(root / "a" / f"{i}.png")
        Image.fromarray(np.zeros((6, 6, 3), np.uint8)).save(root / "b" / f"{i}.png")
    decoded = []
    real = sources.read_image_file
    monkeypatch.setattr(sources, "read_image_file", lambda p, s: decoded.append(p) or real(p, s))
    with pytest.raises(GanaugDataError, match=r"different sizes, e\.g\. 4x4 and 6x9 \(5 sizes in "
                                              r"all\).*size=N"):
        load_data(f"folder:{root}")
    assert len(decoded) == 2


def test_class_folders_named_train_and_val_are_classes_not_a_split(tmp_path):
    """A dataset whose classes are called train and val (a vehicles set: bus, car, train, and a
    'val' class) was read as its own train/val split: 'train' has no class folders, so the
    user got 'no class folders' for a valid ImageFolder. A split's folders hold class folders;
    folders of images are classes."""
    root = _folder(tmp_path / "ds", classes=("bus", "train", "val"))
    data = load_data(f"folder:{root}")
    assert data.classes == ["bus", "train", "val"] and data.class_counts() == [2, 2, 2]


@pytest.mark.parametrize("marker", ["export.json", "metrics.jsonl", "results.json"])
def test_a_ganaug_output_inside_the_dataset_is_refused_not_read_as_a_class(tmp_path, marker):
    # `ganaug export G --out DATA/synth` (or a run's or experiment's --out inside DATA) used to
    # become one more class of DATA: every class's synthetic images (or plots) under "synth".
    root = _folder(tmp_path / "ds")
    _folder(root / "synth", classes=("a", "b"), per_class=1)
    (root / "synth" / marker).write_text("{}")
    with pytest.raises(GanaugDataError, match=rf"synth' holds {marker}: it is a ganaug output.*Move it out"):
        load_data(f"folder:{root}")
    assert load_data(f"folder:{root / 'synth'}").classes == ["a", "b"]  # on its own it loads


def test_an_output_inside_the_class_folders_of_the_data_is_refused(tmp_path):
    from ganaug._specs import check_output_outside

    flat = _folder(tmp_path / "flat")
    for out in (flat / "run", flat / "a" / "deep" / "x", flat):
        with pytest.raises(GanaugDataError, match=r"out='.*' is inside .*flat'.*Write it outside"):
            check_output_outside(out, f"folder:{flat}?split=train")
    split = tmp_path / "split"
    _folder(split / "train"), _folder(split / "test")
    with pytest.raises(GanaugDataError, match=r"inside .*test'"):
        check_output_outside(split / "test" / "synth", f"folder:{split}")
    for out in (tmp_path / "elsewhere", split / "runs", tmp_path / "flat2"):  # not read as classes
        check_output_outside(out, f"folder:{flat}")
        check_output_outside(out, f"folder:{split}")
    check_output_outside(flat / "run", "digits")


def test_train_and_experiment_refuse_an_out_inside_the_data_before_making_it(tmp_path, capsys):
    # `ganaug train --data folder:DATA --out DATA/run` made DATA/run first, then refused it as an
    # empty class of DATA, and left it there: every later load of DATA failed.
    data = _folder(tmp_path / "ds", per_class=4)
    for argv in (["train", "--data", f"folder:{data}", "--steps", "1", "--out", str(data / "run")],
                 ["experiment", "--data", "digits", "--test", f"folder:{data}", "--arms", "real",
                  "--out", str(data / "exp")]):
        assert main(argv) == 2
        assert "is inside" in capsys.readouterr().err
        assert sorted(p.name for p in data.iterdir()) == ["a", "b"]


@pytest.mark.parametrize("layout", [("Train", "Test"), ("training", "testing"), ("TRAIN", "VAL"),
                                    ("train",), ("test",), ("train", "flat test")])
def test_split_folders_ganaug_does_not_take_as_a_split_are_refused_not_read_as_classes(tmp_path,
                                                                                   layout):
    # Train/ + Test/ (or training/ + testing/) each holding cat/ and dog/ loaded as a 2-class
    # dataset "Test" vs "Train"; a train/ of classes beside an unlabelled, flat test/ loaded as
    # classes "test" and "train", each holding every class's images.
    root = tmp_path / "ds"
    for name in layout:
        if name == "flat test":
            (root / "test").mkdir(parents=True)
            Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(root / "test" / "0.png")
        else:
            _folder(root / name, classes=("cat", "dog"))
    first = min(n for n in layout if n != "flat test")
    with pytest.raises(GanaugDataError, match=rf"'{first}' holds class folders \(cat, dog\).*looks "
                                              rf"like a split.*folder:{root / first}"):
        load_data(f"folder:{root}")
    assert load_data(f"folder:{root / first}").classes == ["cat", "dog"]


def test_a_labelled_val_split_is_used_when_test_holds_no_class_folders(tmp_path):
    # train/ and val/ of classes beside an unlabelled test/: test/ was taken as the held-out
    # folder, failed to hold classes, and the three folders became classes test, train, val.
    root = tmp_path / "ds"
    _folder(root / "train", classes=("cat", "dog"))
    _folder(root / "val", classes=("cat", "dog"), per_class=1)
    (root / "test").mkdir()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(root / "test" / "0.png")
    data = load_data(f"folder:{root}", split="test")
    assert data.classes == ["cat", "dog"] and data.class_counts() == [1, 1]
    assert "val" in data.source
    assert load_data(f"folder:{root}").class_counts() == [2, 2]


def test_cli_refuses_a_split_it_does_not_take_as_a_split_without_traceback(tmp_path, capsys):
    _folder(tmp_path / "ds" / "Train"), _folder(tmp_path / "ds" / "Test")
    assert main(["data", "info", f"folder:{tmp_path / 'ds'}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ganaug: error: ") and "looks like a split" in err
    assert "Traceback" not in err


def test_class_folders_named_with_dollars_or_non_utf8_bytes_train_and_draw(tmp_path, capsys):
    # "caf\xe9" (a Latin-1 zip) is read as "caf\udce9": `ganaug train` failed at its first
    # sample grid with a raw TypeError from FreeType, and a class "$x^$" with matplotlib's raw
    # mathtext ValueError (data info --grid too).
    root = tmp_path / "ds"
    try:
        os.makedirs(os.fsencode(root) + b"/caf\xe9")
    except (OSError, UnicodeError):
        pytest.skip("this file system takes no non-UTF-8 names")
    _folder(root, classes=("caf\udce9", "$x^$"), per_class=3)
    data = load_data(f"folder:{root}")
    assert data.classes == ["$x^$", "caf\udce9"] and data.class_counts() == [3, 3]
    assert main(["data", "info", f"folder:{root}", "--grid", str(tmp_path / "grid.png")]) == 0
    out = tmp_path / "run"
    assert main(["train", "--data", f"folder:{root}", "--split", "all", "--steps", "1",
                 "--batch", "2", "--size", "16", "--out", str(out)]) == 0
    assert "Traceback" not in capsys.readouterr().err
    from ganaug.io import load

    assert load(out / "generator.safetensors").classes == ["$x^$", "caf\udce9"]
    assert (tmp_path / "grid.png").is_file() and list(out.glob("samples*"))


def test_each_unreadable_image_is_named_with_its_own_reason(tmp_path, monkeypatch):
    # Every file PIL failed on was "corrupt or not an image": a file the user may not read
    # (a good image: the fix is chmod, not deleting it), a dangling symbolic link and an empty
    # file all read the same.
    import PIL.Image

    root = _folder(tmp_path / "ds", per_class=3)
    noise = np.random.default_rng(0).integers(0, 256, (4, 4, 3), dtype=np.uint8)
    Image.fromarray(noise).resize((32, 32)).save(root / "a" / "1.png")
    good = (root / "a" / "1.png").read_bytes()
    (root / "a" / "1.png").write_bytes(good[: len(good) // 2])  # a download cut short
    (root / "a" / "2.png").write_bytes(b"")
    (root / "b" / "0.png").write_text("a note, not an image")
    os.symlink(tmp_path / "gone.png", root / "b" / "3.png")
    real_open = PIL.Image.open

    def open_(fp, *args, **kwargs):
        if str(fp).endswith(os.path.join("b", "1.png")):
            raise PermissionError(13, "Permission denied", str(fp))
        return real_open(fp, *args, **kwargs)

    monkeypatch.setattr(PIL.Image, "open", open_)
    with pytest.raises(GanaugDataError) as err:
        load_data(f"folder:{root}")
    text = str(err.value)
    assert text.startswith(f"5 image file(s) in {str(root)!r} cannot be read: ")
    for name, reason in (("a/1.png", "truncated or corrupt"), ("a/2.png", "an empty file"),
                         ("b/0.png", "not an image"), ("b/1.png", "permission denied"),
                         ("b/3.png", "a broken symbolic link to")):
        assert f"{root / name} ({reason}" in text
    assert "chmod" in text


def test_data_one_level_down_is_refused_pointing_at_it(tmp_path, capsys):
    # An archive unpacked into DATA/ as DATA/flowers/<class>/...: the message was "1 class(es)
    # ['flowers']; ... Add class folders/labels", when the class folders are there, one down.
    _folder(tmp_path / "ds" / "flowers", classes=("daisy", "rose", "tulip"))
    with pytest.raises(GanaugDataError, match=rf"one class folder, 'flowers', and it holds class "
                                              rf"folders \(daisy, rose, tulip\).*folder:"
                                              rf"{tmp_path / 'ds' / 'flowers'}"):
        load_data(f"folder:{tmp_path / 'ds'}")
    assert main(["train", "--data", f"folder:{tmp_path / 'ds'}", "--steps", "1",
                 "--out", str(tmp_path / "run")]) == 2
    assert f"folder:{tmp_path / 'ds' / 'flowers'}" in capsys.readouterr().err
    assert load_data(f"folder:{tmp_path / 'ds' / 'flowers'}").num_classes == 3


def test_split_class_names_that_differ_only_in_unicode_form_are_told_apart(tmp_path):
    # train/café (composed, as Linux tools write it) and test/café (decomposed, as macOS
    # writes it) were refused as "different class folders (['café', 'tea'] vs ['café',
    # 'tea'])": two lists that print alike.
    import unicodedata

    _folder(tmp_path / "ds" / "train", classes=("café", "tea"))
    _folder(tmp_path / "ds" / "test", classes=(unicodedata.normalize("NFD", "café"), "tea"))
    with pytest.raises(GanaugDataError, match=r"differ only in their Unicode form.*"
                                              r"'caf\\xe9' in .*train.*'cafe\\u0301' in .*test"):
        load_data(f"folder:{tmp_path / 'ds'}")


def test_two_class_folders_that_differ_only_in_unicode_form_are_refused(tmp_path):
    # "café" composed and "café" decomposed (one copied from a Mac) were two classes whose
    # names print alike: the model file then named two classes "café".
    import unicodedata

    _folder(tmp_path / "ds", classes=("café", unicodedata.normalize("NFD", "café"), "tea"))
    with pytest.raises(GanaugDataError, match=r"'cafe\\u0301' and 'caf\\xe9'.*same name.*Unicode "
                                              r"form.*Merge"):
        load_data(f"folder:{tmp_path / 'ds'}")


def test_nas_and_windows_system_folders_are_skipped(tmp_path):
    # A Synology NAS writes a thumbnail folder @eaDir/<image>/SYNOPHOTO_THUMB_*.jpg beside every
    # image: it became a class of its own at the root, and every class read its thumbnails as
    # more images (duplicates of its own); $RECYCLE.BIN and System Volume Information (a USB
    # drive's root) and Synology's #recycle became classes too.
    root = _folder(tmp_path / "ds")
    for where in (root, root / "a", root / "b"):
        _folder(where / "@eaDir", classes=("0.png",), per_class=2)
    for litter in ("$RECYCLE.BIN", "System Volume Information", "#recycle"):
        _folder(root / litter, classes=("x",), per_class=1)
    data = load_data(f"folder:{root}")
    assert data.classes == ["a", "b"] and data.class_counts() == [2, 2]


def test_a_picture_written_into_a_split_folder_is_refused(tmp_path, capsys):
    # `data info folder:DATA --grid DATA/train/grid.png` was allowed ("beside the class
    # folders"), but an image of its own in train/ makes train/ no split: every later load read
    # DATA's train/ and test/ as two classes (now refused as split-like folders).
    from ganaug._specs import check_output_outside

    split = tmp_path / "split"
    _folder(split / "train"), _folder(split / "test")
    for name in ("train", "test"):
        with pytest.raises(GanaugDataError, match=rf"grid='.*grid\.png' is in .*{name}', a split "
                                                  rf"of data=.*Write it beside"):
            check_output_outside(split / name / "grid.png", f"folder:{split}", "grid", file=True)
    for ok in (split / "grid.png", split / "train" / "grid.pdf", tmp_path / "grid.png"):
        check_output_outside(ok, f"folder:{split}", "grid", file=True)
    assert main(["data", "info", f"folder:{split}", "--grid", str(split / "train" / "g.png")]) == 2
    assert "a split of --data" in capsys.readouterr().err
    assert not (split / "train" / "g.png").exists()
    assert load_data(f"folder:{split}").classes == ["a", "b"]

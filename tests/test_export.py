"""export_image_folder: layout, manifest, determinism, resume, refusal of mismatched reruns."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import ganaug.export as export_mod
from ganaug.errors import GanaugConfigError
from ganaug.export import (
    MANIFEST_FIELDS,
    export_image_folder,
    generate_items,
    image_seed,
    model_fingerprint,
)
from ganaug.generator import Generator


@pytest.fixture
def gen(tiny_generator) -> Generator:
    """``tiny_generator`` whose images vary visibly with z (untrained DCGANs are near grey)."""
    with torch.no_grad():
        for m in tiny_generator.net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_var.fill_(1e-3)
    return tiny_generator


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _read_manifest(root: Path) -> list[dict[str, str]]:
    with open(root / "manifest.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_layout_and_manifest(gen, tmp_path):
    result = export_image_folder(gen, tmp_path / "out", n_per_class=4, seed=3, progress=False)
    root = tmp_path / "out"
    assert (result.written, result.skipped, result.total) == (12, 0, 12)
    assert result.counts == {"a": 4, "b": 4, "c": 4}
    assert sorted(p.name for p in root.iterdir()) == ["a", "b", "c", "export.json",
                                                     "manifest.csv"]
    assert sorted(p.name for p in (root / "b").iterdir()) == [f"{i:06d}.png" for i in range(4)]
    rows = _read_manifest(root)
    assert list(rows[0]) == list(MANIFEST_FIELDS)
    assert len(rows) == 12
    assert rows[5] == {"path": "b/000001.png", "class": "b", "label": "1", "seed": "3",
                       "index": "1"}
    for row in rows:
        img = np.asarray(Image.open(root / row["path"]))
        assert img.shape == (16, 16, 3) and img.dtype == np.uint8
    spec = json.loads((root / "export.json").read_text())
    assert spec["n_per_class"] == 4 and spec["seed"] == 3 and spec["classes"] == ["a", "b", "c"]
    assert spec["model_sha256"] == model_fingerprint(gen)
    assert "manifest.csv" in str(result)


def test_pixels_match_generate_items_and_depend_only_on_seed_label_index(gen, tmp_path):
    export_image_folder(gen, tmp_path / "out", n_per_class=3, seed=5, progress=False)
    items = generate_items(gen, [2, 0, 2], [1, 2, 0], seed=5)
    assert items.shape == (3, 3, 16, 16) and items.dtype == torch.uint8
    for img, rel in zip(items, ["c/000001.png", "a/000002.png", "c/000000.png"]):
        on_disk = np.asarray(Image.open(tmp_path / "out" / rel))
        assert np.array_equal(on_disk, img.permute(1, 2, 0).numpy())
    alone = generate_items(gen, ["a"], [2], seed=5, batch_size=1)
    assert torch.equal(alone[0], items[1])
    assert not torch.equal(generate_items(gen, [0], [2], seed=6)[0], items[1])


def test_image_seed_is_stable_and_distinct():
    assert image_seed(0, 1, 2) == image_seed(0, 1, 2)
    seeds = {image_seed(s, y, i) for s in range(3) for y in range(3) for i in range(50)}
    assert len(seeds) == 450
    assert all(0 <= s < 2**64 for s in seeds)


def test_same_arguments_reproduce_identical_files_any_batch_size(gen, tmp_path):
    export_image_folder(gen, tmp_path / "one", n_per_class=5, seed=1, batch_size=256,
                        progress=False)
    export_image_folder(gen, tmp_path / "two", n_per_class=5, seed=1, batch_size=2,
                        progress=False)
    one, two = _files(tmp_path / "one"), _files(tmp_path / "two")
    assert one == two
    other = export_image_folder(gen, tmp_path / "three", n_per_class=5, seed=2, progress=False)
    assert _files(other.root)["a/000000.png"] != one["a/000000.png"]


def test_rerun_skips_finished_files(gen, tmp_path):
    root = tmp_path / "out"
    export_image_folder(gen, root, n_per_class=3, progress=False)
    stamps = {p: p.stat().st_mtime_ns for p in root.rglob("*.png")}
    again = export_image_folder(gen, root, n_per_class=3, progress=False)
    assert (again.written, again.skipped) == (0, 9)
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*.png")} == stamps


def test_interrupted_export_resumes(gen, tmp_path, monkeypatch):
    clean = export_image_folder(gen, tmp_path / "clean", n_per_class=4, progress=False)
    root = tmp_path / "out"
    real_save = export_mod._save_image
    calls = {"n": 0}

    def dies_after_five(path, image, fmt):
        if calls["n"] == 5:
            raise KeyboardInterrupt
        calls["n"] += 1
        real_save(path, image, fmt)

    monkeypatch.setattr(export_mod, "_save_image", dies_after_five)
    with pytest.raises(KeyboardInterrupt):
        export_image_folder(gen, root, n_per_class=4, batch_size=3, progress=False)
    done = sorted(root.rglob("*.png"))
    assert len(done) == 5 and not (root / "manifest.csv").exists()
    stamps = {p: p.stat().st_mtime_ns for p in done}

    monkeypatch.setattr(export_mod, "_save_image", real_save)
    result = export_image_folder(gen, root, n_per_class=4, batch_size=3, progress=False)
    assert (result.written, result.skipped) == (7, 5)
    assert {p: p.stat().st_mtime_ns for p in done} == stamps
    assert _files(root) == _files(clean.root)


def test_stale_temp_files_are_removed(gen, tmp_path):
    root = tmp_path / "out"
    export_image_folder(gen, root, n_per_class=2, progress=False)
    stale = root / "a" / ".000000.png.abc_1234.tmp"  # atomic_path's: 8 random characters
    stale.write_bytes(b"half")
    mine = [root / "a" / ".draft.tmp", root / "a" / ".notes.txt.abc_1234.tmp"]
    for path in mine:
        path.write_bytes(b"the user's")
    export_image_folder(gen, root, n_per_class=2, progress=False)
    assert not stale.exists()
    assert [p.read_bytes() for p in mine] == [b"the user's"] * 2  # not ganaug's temp files


def test_mismatched_rerun_is_refused(gen, tmp_path):
    root = tmp_path / "out"
    export_image_folder(gen, root, n_per_class=2, seed=0, progress=False)
    with pytest.raises(GanaugConfigError, match=r"already holds a ganaug export made with other "
                                                r"arguments \(n_per_class: 2 there, 3 now; "
                                                r"seed: 0 there, 1 now\)"):
        export_image_folder(gen, root, n_per_class=3, seed=1, progress=False)
    with torch.no_grad():
        gen.net.embed.weight.add_(1.0)
    with pytest.raises(GanaugConfigError, match="model_sha256"):
        export_image_folder(gen, root, n_per_class=2, seed=0, progress=False)


def test_foreign_folder_is_refused(gen, tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "me.jpg").write_bytes(b"x")
    with pytest.raises(GanaugConfigError, match="not an empty folder or a ganaug export"):
        export_image_folder(gen, tmp_path / "photos", n_per_class=1, progress=False)


def test_classes_subset_and_jpg(gen, tmp_path):
    result = export_image_folder(gen, tmp_path / "out", n_per_class=2, classes=["c", 0],
                                 fmt="jpg", truncation=0.5, progress=False)
    assert result.counts == {"c": 2, "a": 2}
    rows = _read_manifest(result.root)
    assert [(r["path"], r["label"]) for r in rows] == [
        ("c/000000.jpg", "2"), ("c/000001.jpg", "2"), ("a/000000.jpg", "0"), ("a/000001.jpg", "0")]
    with Image.open(result.root / "c" / "000000.jpg") as im:
        assert im.format == "JPEG" and im.size == (16, 16)


def test_grey_generator_and_unsafe_class_names(tmp_path):
    from ganaug.models import build_generator

    net = build_generator("dcgan", num_classes=2, channels=1, image_size=16, z_dim=8, width=8)
    gen = Generator(net, classes=["cats/dogs", ".."])
    result = export_image_folder(gen, tmp_path / "out", n_per_class=1, progress=False)
    rows = _read_manifest(result.root)
    assert [(r["path"], r["class"]) for r in rows] == [("cats_dogs/000000.png", "cats/dogs"),
                                                     ("class_1/000000.png", "..")]
    with Image.open(result.root / rows[0]["path"]) as im:
        assert im.mode == "L" and im.size == (16, 16)


def test_imagefolder_reads_the_export(gen, tmp_path):
    from torchvision.datasets import ImageFolder

    export_image_folder(gen, tmp_path / "out", n_per_class=2, progress=False)
    ds = ImageFolder(str(tmp_path / "out"))
    assert ds.classes == ["a", "b", "c"] and len(ds) == 6


@pytest.mark.parametrize("kwargs,match", [
    ({"n_per_class": 0}, "n_per_class must be an integer >= 1, got 0"),
    ({"n_per_class": 2, "seed": -1}, r"seed must be an integer from 0 to .*, got -1"),
    ({"n_per_class": 2, "fmt": "gif"}, "fmt must be one of png, jpg, got 'gif'."),
    ({"n_per_class": 2, "classes": ["a", "a"]}, "at most once"),
    ({"n_per_class": 2, "classes": ["dgo"]}, "Unknown class 'dgo'"),
    ({"n_per_class": 2, "batch_size": 0}, "batch_size must be an integer >= 1, got 0"),
    ({"n_per_class": 2, "truncation": 2.0}, r"truncation must be a finite number in \(0, 1\]"),
])
def test_argument_errors(gen, tmp_path, kwargs, match):
    with pytest.raises(GanaugConfigError, match=match):
        export_image_folder(gen, tmp_path / "out", progress=False, **kwargs)
    assert not (tmp_path / "out").exists()


def test_generate_items_errors(gen):
    with pytest.raises(GanaugConfigError, match="same length, got 2 and 1"):
        generate_items(gen, [0, 1], [0], seed=0)
    with pytest.raises(GanaugConfigError, match="index must be an integer >= 0, got -3"):
        generate_items(gen, [0], [-3], seed=0)


@pytest.mark.parametrize(("name", "match"), [
    ("x" * 300, r"300 bytes\), longer than the 255 bytes"),
    ("caf\ud800", r"cannot be a folder name"),
])
def test_export_refuses_class_names_that_cannot_be_folders(tmp_path, name, match):
    from ganaug.errors import GanaugConfigError
    from ganaug.export import export_image_folder
    from ganaug.generator import Generator
    from ganaug.models import build_generator

    net = build_generator("dcgan", num_classes=2, channels=3, image_size=16, z_dim=8, width=8,
                          embed_dim=8)
    gen = Generator(net, classes=["ok", name])
    with pytest.raises(GanaugConfigError, match=match):
        export_image_folder(gen, tmp_path / "out", n_per_class=1, progress=False)
    assert not (tmp_path / "out" / "ok").exists()


def test_an_export_larger_than_the_free_disk_is_refused_before_anything_is_written(gen, tmp_path):
    """export --n-per-class 100000000000 used to list every image first (hanging, then running
    out of memory); it is refused at once when even tiny files could not fit on the disk."""
    root = tmp_path / "out"
    with pytest.raises(GanaugConfigError, match=r"300,000,000,000,000 images needs at least .* "
                                                r"free.*fewer images"):
        export_image_folder(gen, root, n_per_class=10**14, progress=False)
    assert not root.exists()


def test_a_large_export_starts_writing_without_listing_every_image(gen, tmp_path, monkeypatch):
    class Stop(Exception):
        pass

    def first_chunk(generator, labels, indices, **kwargs):
        assert (labels, indices) == ([0, 0, 0], [0, 1, 2])
        raise Stop

    monkeypatch.setattr(export_mod, "generate_items", first_chunk)
    monkeypatch.setattr(export_mod, "MIN_IMAGE_BYTES", 0)
    with pytest.raises(Stop):  # 3 x 10**12 items: a list of them would not fit in memory
        export_image_folder(gen, tmp_path / "out", n_per_class=10**12, batch_size=3,
                            progress=False)


@pytest.mark.parametrize("names, folders", [
    ([".hidden", "b", "c"], ["_hidden", "b", "c"]),      # a hidden folder is no class when loaded
    (["..x", "__MACOSX", "c"], ["_x", "___MACOSX", "c"]),
    (["export.json", "manifest.csv", "c"], ["_export.json", "_manifest.csv", "c"]),  # the root's files
])
def test_export_class_folders_read_back_as_every_class(tiny_net, tmp_path, names, folders):
    from ganaug.data import load_data

    gen = Generator(tiny_net, classes=names)
    result = export_image_folder(gen, tmp_path / "out", n_per_class=1, progress=False)
    rows = _read_manifest(result.root)
    assert [r["path"].split("/")[0] for r in rows] == folders
    assert [r["class"] for r in rows] == names
    assert load_data(f"folder:{result.root}").classes == sorted(folders)  # none lost


def test_a_batch_larger_than_memory_is_refused_before_anything_is_written(gen, tmp_path,
                                                                         monkeypatch):
    # batch_size=10**12 listed a batch of every image, then died in torch's allocator
    monkeypatch.setattr("ganaug._imaging.available_memory", lambda: 10**6)
    root = tmp_path / "out"
    with pytest.raises(GanaugConfigError, match=r"batch_size=1,000,000,000,000: 30,000 generated "
                                                r"images of .* need about .* of memory, but 1\.0 "
                                                r"MB is available\. Use batch_size <= \d+\."):
        export_image_folder(gen, root, n_per_class=10**4, batch_size=10**12, progress=False)
    assert not root.exists()
    assert export_image_folder(gen, root, n_per_class=2, batch_size=10**12,
                               progress=False).written == 6  # a batch is never more than the export


def _fold_case(monkeypatch):
    """Make folder names case-insensitive, as on macOS' and Windows' default file systems."""
    real_mkdir, real_lexists = os.mkdir, os.path.lexists

    def mkdir(path, *args, **kwargs):
        p = Path(path)
        return real_mkdir(p.parent / p.name.casefold(), *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", mkdir)
    monkeypatch.setattr(os.path, "lexists", lambda p: real_lexists(Path(p).parent
                                                                  / Path(p).name.casefold()))


def test_classes_that_differ_only_in_case_export_where_the_file_system_keeps_them_apart(
        tiny_net, tmp_path):
    from ganaug.data import load_data

    gen = Generator(tiny_net, classes=["a", "A", "b"])  # EMNIST-style letter classes
    result = export_image_folder(gen, tmp_path / "out", n_per_class=1, progress=False)
    assert load_data(f"folder:{result.root}").classes == ["A", "a", "b"]


def test_classes_one_folder_on_a_case_insensitive_file_system_are_refused(tiny_net, tmp_path,
                                                                           monkeypatch):
    """On macOS or Windows, 'a' and 'A' are one folder: the export wrote both classes into it
    (and took A's images as already present), so reading it back gave one mixed class."""
    gen = Generator(tiny_net, classes=["a", "A", "b"])
    _fold_case(monkeypatch)
    with pytest.raises(GanaugConfigError, match=r"'a' and 'A'.*one folder.*case"):
        export_image_folder(gen, tmp_path / "out", n_per_class=1, progress=False)
    assert not (tmp_path / "out").exists()  # refused before anything was written

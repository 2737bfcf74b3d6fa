"""Hostile and unusual data: bad numbers, wide pixel types, loops, bombs, huge sizes, bad options."""

from __future__ import annotations

import os
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from ganaug.data import load_data
from ganaug.errors import GanaugDataError


def _classes(root, per_class=2, make=None, classes=("a", "b")):
    for k, c in enumerate(classes):
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            make(root / c, i, k)
    return root


# -- point 5: bad numbers and wide pixel types ------------------------------------------------------
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_npz_non_finite_pixels_are_refused(tmp_path, bad):
    x = np.full((4, 4, 4), 0.5, np.float32)
    x[2, 1, 3] = bad
    np.savez(tmp_path / "d.npz", x=x, y=np.array([0, 1, 0, 1]))
    with pytest.raises(GanaugDataError, match=r"npz 'x' holds 1 non-finite value\(s\) \(NaN or "
                                              r"Inf\), e\.g\. at image 2"):
        load_data(f"npz:{tmp_path / 'd.npz'}")


def test_16bit_png_is_scaled_not_clipped(tmp_path):
    def make(folder, i, k):
        arr = np.full((4, 4), 65535 if k else 32896, np.uint16)  # 32896 = 128 * 257
        Image.fromarray(arr).save(folder / f"{i}.png")

    root = _classes(tmp_path / "ds", make=make)
    assert Image.open(root / "a" / "0.png").mode.startswith("I")
    data = load_data(f"folder:{root}")
    assert data.channels == 1
    assert data.images[data.labels == 0].unique().tolist() == [128]
    assert data.images[data.labels == 1].unique().tolist() == [255]


def test_float_tiff_in_unit_range_is_scaled(tmp_path):
    def make(folder, i, k):
        Image.fromarray(np.full((4, 4), 0.5 if k else 0.25, np.float32)).save(folder / f"{i}.tif")

    data = load_data(f"folder:{_classes(tmp_path / 'ds', make=make)}")
    assert data.images[data.labels == 0].unique().tolist() == [64]
    assert data.images[data.labels == 1].unique().tolist() == [128]


def test_float_tiff_outside_unit_range_is_refused(tmp_path):
    def make(folder, i, k):
        Image.fromarray(np.full((4, 4), 300.0, np.float32)).save(folder / f"{i}.tif")

    root = _classes(tmp_path / "ds", make=make)
    with pytest.raises(GanaugDataError, match=r"float image .*0\.tif.* values in \[300, 300\]; "
                                              r"ganaug reads float images in \[0, 1\]"):
        load_data(f"folder:{root}")


# -- point 6: loops, bombs, huge images, bad npz classes, absurd sizes -------------------------------
def _png(folder, i, k):
    Image.fromarray(np.full((4, 4, 3), 40 * k + i, np.uint8)).save(folder / f"{i}.png")


def test_symlink_loop_in_a_class_folder_adds_no_duplicates(tmp_path):
    root = _classes(tmp_path / "ds", make=_png)
    (root / "a" / "sub").mkdir()
    _png(root / "a" / "sub", 7, 0)
    os.symlink(root / "a", root / "a" / "sub" / "loop")  # a/sub/loop -> a
    os.symlink(root / "a" / "sub", root / "a" / "again")  # a/again -> a/sub
    data = load_data(f"folder:{root}")
    assert data.class_counts() == [3, 2]


@pytest.mark.parametrize("link, target", [("c", "a"), ("a/all", "."), ("a/more", "b"),
                                          ("a/sub/up", "a/..")])
def test_a_link_that_puts_another_class_in_a_class_is_refused(tmp_path, link, target):
    # A class folder c linked to class a loaded a's images under two labels; a link inside
    # class a to the dataset folder (or to class b) loaded b's images as a's, silently.
    root = _classes(tmp_path / "ds", make=_png)
    (root / "a" / "sub").mkdir()
    os.symlink(os.path.normpath(root / target), root / link)
    with pytest.raises(GanaugDataError, match=rf"{link.split('/')[-1]}' leads to "
                                              rf".*holds (the images of )?class .*Remove the link"):
        load_data(f"folder:{root}")


def test_class_folders_linked_from_elsewhere_load(tmp_path):
    store = _classes(tmp_path / "store", make=_png)
    (tmp_path / "ds").mkdir()
    for c in ("a", "b"):
        os.symlink(store / c, tmp_path / "ds" / c)
    assert load_data(f"folder:{tmp_path / 'ds'}").class_counts() == [2, 2]


def _bomb_png(path, width, height):
    """A PNG whose header claims width x height grey pixels (only the header matters)."""
    def chunk(kind, payload):
        return (struct.pack(">I", len(payload)) + kind + payload
                + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                     + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("side", [20000, 100000])
def test_decompression_bomb_is_refused_naming_the_file(tmp_path, side):
    root = _classes(tmp_path / "ds", make=_png)
    _bomb_png(root / "b" / "bomb.png", side, side)
    with pytest.raises(GanaugDataError, match=rf"bomb\.png.* {side}x{side} pixels .* more than "
                                              r"the .* pixels ganaug decodes per image"):
        load_data(f"folder:{root}")


def test_large_images_are_reduced_while_reading(tmp_path, monkeypatch):
    import ganaug._imaging as imaging

    def make(folder, i, k):
        Image.fromarray(np.full((800, 600, 3), 100 + k, np.uint8)).save(folder / f"{i}.jpg")

    root = _classes(tmp_path / "ds", make=make)
    seen = []
    real = imaging.decoded_array

    def spy(img, path):
        seen.append(img.size)
        return real(img, path)

    monkeypatch.setattr(imaging, "decoded_array", spy)
    data = load_data(f"folder:{root}", size=16)
    assert data.images.shape == (4, 3, 16, 16)
    assert max(max(s) for s in seen) <= 800 // 8  # JPEG draft: decoded at 1/8 scale
    assert abs(int(data.images[0].float().mean()) - 100) <= 2


@pytest.mark.parametrize("mode", ["P", "P+transparency", "1"])
def test_large_palette_and_bilevel_images_are_read_in_their_colours_with_size(tmp_path, mode):
    # With size=, a large image is reduced while reading; PIL's reduce refuses "P" and "1"
    # images, so every palette or bilevel PNG 4x the size or more was refused as "corrupt or
    # not an image" (on "PA" it averaged palette indices: colours that are in no image).
    colours = [(250, 10, 10), (10, 10, 250)]  # a red/blue checkerboard averages to purple

    def make(folder, i, k):
        check = (np.indices((256, 256)).sum(0) % 2).astype(np.uint8)
        rgb = np.array(colours, np.uint8)[check]
        img = Image.fromarray(rgb).convert("RGB")
        if mode == "1":
            Image.fromarray(check * 255).convert("1").save(folder / f"{i}.png")
        else:
            extra = {"transparency": 0} if mode != "P" else {}
            img.quantize(colors=2).save(folder / f"{i}.png", **extra)

    root = _classes(tmp_path / "ds", make=make)
    small = load_data(f"folder:{root}", size=16)
    full = load_data(f"folder:{root}")
    expect = full.images.float().mean(dim=(0, 2, 3))
    assert small.images.shape[-2:] == (16, 16)
    torch.testing.assert_close(small.images.float().mean(dim=(0, 2, 3)), expect, atol=2, rtol=0)
    if mode != "1":
        torch.testing.assert_close(expect, torch.tensor([130.0, 10.0, 130.0]), atol=2, rtol=0)


def test_size_that_needs_too_much_memory_is_refused_before_allocating(tmp_path, monkeypatch):
    import ganaug._imaging as imaging

    monkeypatch.setattr(imaging, "available_memory", lambda: 10**6)  # 1 MB free
    root = _classes(tmp_path / "ds", make=_png)
    with pytest.raises(GanaugDataError, match=r"4 images of 3x1000x1000 need 12\.0 MB .*only "
                                              r"1\.0 MB.* Lower size"):
        load_data(f"folder:{root}", size=1000)
    with pytest.raises(GanaugDataError, match=r"1,797 images of 1x4096x4096 need 30\.1 GB"):
        load_data("digits", size=4096)


def test_npz_duplicate_class_names_are_refused(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((4, 4, 4), np.uint8), y=np.array([0, 1, 2, 0]),
             classes=np.array(["cat", "dog", "cat"]))
    with pytest.raises(GanaugDataError, match=r"duplicate class name\(s\) 'cat'"):
        load_data(f"npz:{tmp_path / 'd.npz'}")


def test_npz_empty_classes_are_refused(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((4, 4, 4), np.uint8), y=np.array([0, 2, 2, 0]),
             classes=np.array(["cat", "dog", "eel"]))
    with pytest.raises(GanaugDataError, match=r"class\(es\) with no images: 'dog'"):
        load_data(f"npz:{tmp_path / 'd.npz'}")


def test_npz_absurd_label_is_refused_without_building_classes(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((2, 4, 4), np.uint8), y=np.array([0, 10**15]))
    with pytest.raises(GanaugDataError, match=r"label 1000000000000000 .* 2 images"):
        load_data(f"npz:{tmp_path / 'd.npz'}")


# -- point 7: clean errors -----------------------------------------------------------------------
@pytest.mark.parametrize("content", [b"hello, not a zip", np.lib.format.MAGIC_PREFIX + b"junk"])
def test_non_zip_npz_is_refused(tmp_path, content):
    (tmp_path / "d.npz").write_bytes(content)
    with pytest.raises(GanaugDataError, match=r"is not a zip archive"):
        load_data(f"npz:{tmp_path / 'd.npz'}")


def test_npy_file_saved_as_npz_is_refused(tmp_path):
    np.save(tmp_path / "d.npy", np.zeros((2, 4, 4), np.uint8))
    os.rename(tmp_path / "d.npy", tmp_path / "d.npz")
    with pytest.raises(GanaugDataError, match=r"is not a zip archive.*numpy\.savez"):
        load_data(f"npz:{tmp_path / 'd.npz'}")


def test_train_and_test_with_different_channels_become_rgb(tmp_path):
    _classes(tmp_path / "ds" / "train", make=_png)

    def grey(folder, i, k):
        Image.fromarray(np.full((4, 4), 9, np.uint8)).save(folder / f"{i}.png")

    _classes(tmp_path / "ds" / "test", make=grey)
    spec = f"folder:{tmp_path / 'ds'}"
    every = load_data(spec, split="all")
    assert every.images.shape == (8, 3, 4, 4)
    assert every.images[4:].unique().tolist() == [9]
    test = load_data(spec, split="test")  # the same channels as train, alone too
    assert test.images.shape == (4, 3, 4, 4)


@pytest.mark.parametrize("ratio", [float("inf"), float("nan"), 0.5, -3.0])
def test_bad_imbalance_is_refused(ratio):
    with pytest.raises(GanaugDataError, match=rf"imbalance must be a finite ratio >= 1 .*got "
                                              rf"{ratio!r}"):
        load_data("digits", imbalance=ratio)


@pytest.mark.parametrize("spec, kw", [("digits", {"seed": -1, "per_class": 3}),
                                      ("digits?seed=-5&per_class=3", {})])
def test_negative_seed_is_refused(spec, kw):
    with pytest.raises(GanaugDataError, match=r"seed must be an integer >= 0, got -\d"):
        load_data(spec, **kw)


def test_cli_imbalance_inf_is_a_clean_error(capsys):
    from ganaug.cli import main

    with pytest.raises(SystemExit) as exit_info:  # argparse's own usage error
        main(["data", "info", "digits", "--imbalance", "inf"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "argument --imbalance: must be a finite number, got 'inf'" in err
    assert "Traceback" not in err


def test_small_images_unchanged_by_the_reader(tmp_path):
    root = _classes(tmp_path / "ds", make=_png)
    data = load_data(f"folder:{root}")
    assert data.images[:, 0, 0, 0].tolist() == [0, 1, 40, 41]
    assert data.images.dtype == torch.uint8


def test_16bit_tiff_is_scaled_and_32bit_int_tiff_is_refused(tmp_path):
    def make16(folder, i, k):
        Image.fromarray(np.full((4, 4), 257 * (10 + k), np.uint16)).save(folder / f"{i}.tif")

    data = load_data(f"folder:{_classes(tmp_path / 'a', make=make16)}")
    assert data.images[:, 0, 0, 0].tolist() == [10, 10, 11, 11]

    def make32(folder, i, k):
        Image.fromarray(np.full((4, 4), 1000, np.int32)).save(folder / f"{i}.tif")

    with pytest.raises(GanaugDataError, match=r"0\.tif' has 32-bit integer pixels \(PIL mode I\)"):
        load_data(f"folder:{_classes(tmp_path / 'b', make=make32)}")


def test_exif_orientation_is_not_applied_as_in_imagefolder(tmp_path):
    # Documented choice (docs/data.md): the pixels match what torchvision's ImageFolder gives a
    # classifier on the same folder, so synthetic images are not rotated against the real ones.
    from torchvision.datasets import ImageFolder

    def make(folder, i, k):
        img = Image.fromarray(np.full((4, 8, 3), 30 * k + i, np.uint8))
        exif = img.getexif()
        exif[0x0112] = 6  # "rotate 90 CW to view": a phone's portrait photo
        img.save(folder / f"{i}.jpg", exif=exif.tobytes())

    root = _classes(tmp_path / "ds", make=make)
    data = load_data(f"folder:{root}")
    assert data.images.shape[-2:] == (4, 8)
    ref = ImageFolder(str(root))
    assert [np.asarray(ref[i][0]).shape[:2] for i in range(len(ref))] == [(4, 8)] * 4

"""Pure kernels: match_image's per-type dispatch, label_to_index, per-class counts."""

from __future__ import annotations

import numpy as np
import PIL.Image
import pytest
import torch
from torchvision import tv_tensors

from ganaug.augment.functional import (
    KERNELS,
    UnsupportedImageError,
    label_to_index,
    match_image,
    per_class_counts,
)
from ganaug.errors import GanaugConfigError, GanaugDataError

FAKE = torch.stack([torch.full((4, 4), v, dtype=torch.uint8) for v in (255, 0, 51)])  # RGB


def test_every_supported_type_has_a_kernel():
    assert set(KERNELS) == {PIL.Image.Image, np.ndarray, tv_tensors.Image, torch.Tensor}


def test_match_pil_keeps_mode_and_size():
    out = match_image(FAKE, PIL.Image.new("RGB", (8, 2)))
    assert out.mode == "RGB" and out.size == (8, 2)
    assert np.asarray(out)[0, 0].tolist() == [255, 0, 51]
    grey = match_image(FAKE, PIL.Image.new("L", (4, 4)))
    expected = round(0.2989 * 255 + 0.114 * 51)  # luma of (255, 0, 51)
    assert grey.mode == "L" and abs(int(np.asarray(grey)[0, 0]) - expected) <= 1


def test_match_ndarray_keeps_dtype_and_layout():
    u8 = match_image(FAKE, np.zeros((4, 4, 3), np.uint8))
    assert u8.dtype == np.uint8 and u8.shape == (4, 4, 3) and u8[1, 1].tolist() == [255, 0, 51]
    f32 = match_image(FAKE, np.zeros((4, 4, 3), np.float32))
    np.testing.assert_allclose(f32[0, 0], [1.0, 0.0, 0.2], rtol=1e-6)
    assert match_image(FAKE, np.zeros((4, 4), np.uint8)).shape == (4, 4)


def test_match_tensor_and_tv_image():
    half = match_image(FAKE, torch.zeros(3, 2, 2, dtype=torch.float16))
    assert half.dtype == torch.float16 and half.shape == (3, 2, 2)
    torch.testing.assert_close(half[:, 0, 0], torch.tensor([1.0, 0.0, 0.2], dtype=torch.float16))
    hw = match_image(FAKE, torch.zeros(4, 4, dtype=torch.uint8))
    assert hw.shape == (4, 4) and hw.dtype == torch.uint8
    tv = match_image(FAKE, tv_tensors.Image(torch.zeros(1, 4, 4, dtype=torch.uint8)))
    assert type(tv) is tv_tensors.Image and tv.shape == (1, 4, 4)


def test_match_dispatch_error_lists_the_supported_types():
    with pytest.raises(UnsupportedImageError, match=r"type list\. Accepted: PIL images, tensors "
                                                    r"\(C, H, W\), tv_tensors\.Image and NumPy"):
        match_image(FAKE, [[0, 1], [2, 3]])
    with pytest.raises(TypeError):  # also a TypeError, like torchvision's
        match_image(FAKE, "image.png")
    with pytest.raises(GanaugDataError):  # and a GanaugDataError, as before
        match_image(FAKE, 3.0)


def test_match_refuses_batches_and_odd_channels():
    with pytest.raises(GanaugDataError, match=r"shape \(2, 3, 4, 4\).*use ganaug.BatchMixer"):
        match_image(FAKE, torch.zeros(2, 3, 4, 4))
    with pytest.raises(GanaugDataError, match=r"NumPy \(H, W, C\) array.*\(4, 4, 4\)"):
        match_image(FAKE, np.zeros((4, 4, 4), np.uint8))


@pytest.mark.parametrize("label,expected", [
    (1, 1), ("c", 2), (np.int64(0), 0), (torch.tensor(2), 2), (torch.tensor([1]), 1),
    (np.array(2), 2),
])
def test_label_to_index_accepts(label, expected):
    assert label_to_index(label, ["a", "b", "c"]) == expected


@pytest.mark.parametrize("label,error,match", [
    ("bb", GanaugConfigError, r"Unknown class 'bb' in counts\. Classes: a, b, c\. Did you mean 'b'"),
    (3, GanaugConfigError, r"Label 3 in counts is out of range: there are 3 classes \(labels 0\.\.2\)"),
    (-1, GanaugConfigError, r"Label -1 in counts is out of range"),
    (1.0, GanaugConfigError, r"must be an int or a class name, got 1\.0 \(float\)"),
    (True, GanaugConfigError, r"got True \(bool\)"),
    (torch.tensor([0, 1]), GanaugDataError, r"one integer class label.*shape \(2,\)"),
    (torch.tensor(0.5), GanaugDataError, r"dtype torch\.float32"),
])
def test_label_to_index_errors(label, error, match):
    with pytest.raises(error, match=match):
        label_to_index(label, ["a", "b", "c"], what="counts")


def test_label_to_index_error_type_and_fix():
    with pytest.raises(GanaugDataError, match=r"Label 7 is out of range.*\)\. Retrain\.$"):
        label_to_index(7, ["a", "b"], error=GanaugDataError, fix="Retrain.")


def test_per_class_counts():
    classes = ["a", "b", "c"]
    assert per_class_counts(2, classes, what="n") == [2, 2, 2]
    assert per_class_counts([1, 0, 3], classes, what="counts") == [1, 0, 3]
    assert per_class_counts({"c": 4, 0: 1}, classes, what="counts") == [1, 0, 4]
    with pytest.raises(GanaugConfigError, match=r"each entry of counts must be an integer >= 0, "
                                                r"got -2"):
        per_class_counts([1, -2, 0], classes, what="counts")


@pytest.mark.parametrize("like", [
    PIL.Image.new("RGB", (1, 1)), torch.zeros(3, 1, 1, dtype=torch.uint8),
    np.zeros((1, 1, 3), np.uint8), torch.zeros(3, 1, 1), PIL.Image.new("RGB", (1, 7))])
def test_a_one_pixel_image_is_replaced(like):
    # A 1x1 uint8 RGB resize hit an internal assert of torch's antialiased kernel.
    out = np.asarray(match_image(FAKE, like)).reshape(-1)
    scale = 255 if out.dtype.kind == "f" else 1
    assert out.size == np.asarray(like).size
    np.testing.assert_allclose(out[:3] * scale, [255, 0, 51], atol=1)


@pytest.mark.parametrize("like", [PIL.Image.new("RGB", (0, 0)), torch.zeros(3, 0, 5),
                                  np.zeros((4, 0, 3), np.uint8)])
def test_an_empty_image_is_refused(like):
    with pytest.raises(GanaugDataError, match=r"has no pixels \(size"):
        match_image(FAKE, like)


@pytest.mark.parametrize("like", [np.zeros((4, 4, 3), np.uint16), np.zeros((4, 4), np.int64),
                                  np.zeros((4, 4, 3), bool), torch.zeros(3, 4, 4, dtype=torch.bool)])
def test_images_of_unknown_value_range_are_refused(like):
    # uint16/int64 arrays came back as all 0 (x / 255 truncated), bool ones as all True.
    with pytest.raises(UnsupportedImageError, match=r"dtype .*; accepted: uint8, or float"):
        match_image(FAKE, like)


@pytest.mark.parametrize("dtype", [torch.int8, torch.int16, torch.int32, torch.int64,
                                   torch.uint32, torch.uint64])
def test_integer_image_tensors_other_than_uint8_and_uint16_are_refused(dtype):
    # torch.tensor(np_uint8_image.astype(int)) holds 0..255 values; read on torchvision's
    # full-range scale (to_dtype), a fake of 200 came back as ~7.2e18 in int64 (~1.7e9 in int32,
    # 25,600 in int16, 100 in int8); uint32/uint64 raised a raw TypeError from to_dtype
    with pytest.raises(UnsupportedImageError, match=rf"{dtype}.*\.to\(torch\.uint8\)"):
        match_image(FAKE, torch.full((3, 4, 4), 100, dtype=dtype))
    uint16 = match_image(FAKE, torch.zeros(3, 4, 4, dtype=torch.uint16))  # 16-bit: full range
    assert uint16.dtype == torch.uint16 and int(uint16.to(torch.int32).max()) > 255


@pytest.mark.parametrize("mode, scale", [("I;16", 257), ("I;16L", 257), ("I;16B", 257),
                                         ("I;16N", 257), ("F", 1 / 255)])
def test_pil_16bit_and_float_images_keep_their_value_range(mode, scale):
    # 16-bit images came back with 0..255 values (near black on a 0..65535 scale), float
    # ones with 0..255 where ganaug (and torchvision's ToImage) read float images as [0, 1]
    grey = int(np.asarray(match_image(FAKE, PIL.Image.new("L", (4, 4))))[0, 0])
    like = PIL.Image.new(mode, (4, 3))
    out = match_image(FAKE, like)
    assert out.mode == mode and out.size == (4, 3)
    values = np.asarray(out).astype(np.float64)
    np.testing.assert_allclose(values, grey * scale, rtol=1e-6)


@pytest.mark.parametrize("mode", ["P", "PA"])
def test_palette_images_get_fakes_in_their_own_palette(mode):
    # A fake came back on PIL's 216-colour web palette: its indices meant other colours than
    # the real image's (index 14 where the user's palette has 4 entries).
    like = PIL.Image.new("P", (4, 3))
    like.putpalette([0, 0, 0, 250, 0, 40, 0, 0, 255, 255, 255, 255])
    like = like.convert(mode)
    out = match_image(FAKE, like)
    assert out.mode == mode and out.size == (4, 3)
    assert out.getpalette() == like.getpalette()
    assert np.asarray(out.convert("P") if mode == "PA" else out).max() < 4
    assert out.convert("RGB").getpixel((0, 0)) == (250, 0, 40)  # the nearest of the 4 to FAKE


def test_pil_32bit_integer_images_are_refused():
    # mode I holds 16-bit scans as often as 0..255 data: its range is unknowable (data loading
    # refuses such files too); fakes came back as 0..255 in it
    with pytest.raises(UnsupportedImageError, match=r"PIL mode I .*Convert.*'I;16'.*'L'"):
        match_image(FAKE, PIL.Image.new("I", (4, 4)))


def test_pil_float_images_outside_unit_range_are_refused():
    like = PIL.Image.fromarray(np.full((4, 4), 200.0, np.float32))  # a 0..255 float image
    with pytest.raises(GanaugDataError, match=r"mode F.*\[200, 200\].*\[0, 1\]"):
        match_image(FAKE, like)
    assert np.asarray(match_image(FAKE, PIL.Image.fromarray(np.ones((4, 4), np.float32)))).max() <= 1

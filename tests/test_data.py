"""Tests of ganaug.data: every spec, every option, the seeded regimes and every error message."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from ganaug.data import (
    LabeledImages,
    describe,
    load_data,
    long_tail_counts,
    long_tail_subset,
    parse_spec,
    save_data_grid,
    subset_per_class,
)
from ganaug.errors import GanaugDataError


# -- helpers ------------------------------------------------------------------------------------
def _write_folder(root, classes=("cat", "dog", "eel"), per_class=4, size=(8, 8), grey_one=True):
    """ImageFolder with ``per_class`` seeded RGB PNGs per class; the first cat is grey."""
    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            arr = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
            img = Image.fromarray(arr, "RGB")
            if grey_one and c == classes[0] and i == 0:
                img = img.convert("L")
            img.save(root / c / f"{i}.png")
    return root


def _tiny(n_per_class=(6, 6, 6), size=4) -> LabeledImages:
    labels = torch.cat([torch.full((n,), k, dtype=torch.int64) for k, n in enumerate(n_per_class)])
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (len(labels), 1, size, size), dtype=torch.uint8, generator=g)
    return LabeledImages(images, labels, [f"c{k}" for k in range(len(n_per_class))], "tiny", "")


@pytest.fixture(scope="module")
def mnist():
    return load_data("mnist5k")


@pytest.fixture(scope="module")
def digits():
    return load_data("digits")


# -- built-in sources -----------------------------------------------------------------------------
def test_mnist5k_is_5000_grey_28px_500_per_class(mnist):
    assert mnist.images.shape == (5000, 1, 28, 28)
    assert mnist.images.dtype == torch.uint8 and mnist.labels.dtype == torch.int64
    assert mnist.class_counts() == [500] * 10
    assert mnist.classes == [str(k) for k in range(10)]
    assert int(mnist.images.max()) == 255 and int(mnist.images.min()) == 0
    assert (mnist.num_classes, mnist.channels, mnist.image_size, len(mnist)) == (10, 1, 28, 5000)
    assert mnist.spec == "mnist5k"


def test_digits_are_scaled_from_0_16_to_0_255(digits):
    from sklearn.datasets import load_digits

    raw = load_digits()
    assert digits.images.shape == (1797, 1, 8, 8)
    assert int(digits.images.max()) == 255
    expected = np.rint(raw.images[5] * 255 / 16).astype(np.uint8)
    np.testing.assert_array_equal(digits.images[5, 0].numpy(), expected)
    assert digits.labels.tolist() == raw.target.tolist()


# -- folder ---------------------------------------------------------------------------------------
def test_folder_mixed_modes_become_rgb(tmp_path):
    root = _write_folder(tmp_path / "imgs")
    data = load_data(f"folder:{root}")
    assert data.classes == ["cat", "dog", "eel"]
    assert data.images.shape == (12, 3, 8, 8)
    assert data.class_counts() == [4, 4, 4]
    grey = np.array(Image.open(root / "cat" / "0.png"))
    for ch in range(3):  # the grey image is repeated into R, G and B
        np.testing.assert_array_equal(data.images[0, ch].numpy(), grey)
    rgb = np.array(Image.open(root / "dog" / "1.png")).transpose(2, 0, 1)
    np.testing.assert_array_equal(data.images[5].numpy(), rgb)


def test_folder_all_grey_stays_grey_and_channels_converts(tmp_path):
    root = tmp_path / "g"
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(np.full((5, 5), 40 * i + (c == "b") * 100, np.uint8), "L").save(
                root / c / f"{i}.bmp")
    grey = load_data(f"folder:{root}")
    assert grey.images.shape == (4, 1, 5, 5)
    assert grey.images[:, 0, 0, 0].tolist() == [0, 40, 100, 140]
    rgb = load_data(f"folder:{root}", channels=3)
    assert rgb.images.shape == (4, 3, 5, 5) and torch.equal(rgb.images[:, 2], grey.images[:, 0])


def test_folder_rgb_to_grey_uses_luma(tmp_path):
    root = _write_folder(tmp_path / "imgs", grey_one=False)
    rgb = load_data(f"folder:{root}")
    grey = load_data(f"folder:{root}", channels=1)
    from torchvision.transforms.v2.functional import rgb_to_grayscale

    assert grey.images.shape == (12, 1, 8, 8)
    assert torch.equal(grey.images, rgb_to_grayscale(rgb.images))


def test_folder_different_sizes_need_size(tmp_path):
    root = _write_folder(tmp_path / "imgs", grey_one=False)
    Image.fromarray(np.zeros((10, 12, 3), np.uint8)).save(root / "dog" / "big.png")
    with pytest.raises(GanaugDataError, match=r"different sizes, e\.g\. 8x8 and 12x10.*size=N"):
        load_data(f"folder:{root}")
    data = load_data(f"folder:{root}", size=6)
    assert data.images.shape == (13, 3, 6, 6)


def test_folder_corrupt_file_is_named(tmp_path):
    root = _write_folder(tmp_path / "imgs")
    (root / "eel" / "broken.png").write_bytes(b"not a png at all")
    with pytest.raises(GanaugDataError, match=r"1 image file\(s\).*cannot be read.*broken\.png"):
        load_data(f"folder:{root}")


def test_folder_empty_class_is_named(tmp_path):
    root = _write_folder(tmp_path / "imgs")
    (root / "zebra").mkdir()
    (root / "zebra" / "notes.txt").write_text("no images here")
    with pytest.raises(GanaugDataError, match=r"no images.*: zebra\."):
        load_data(f"folder:{root}")


def test_folder_missing_path_and_no_classes(tmp_path):
    with pytest.raises(GanaugDataError, match=r"does not exist.*folder:PATH"):
        load_data(f"folder:{tmp_path / 'nope'}")
    (tmp_path / "flat").mkdir()
    with pytest.raises(GanaugDataError, match=r"no class sub-folders"):
        load_data(f"folder:{tmp_path / 'flat'}")


def test_folder_fewer_than_two_classes(tmp_path):
    root = _write_folder(tmp_path / "one", classes=("only",))
    with pytest.raises(GanaugDataError, match=r"1 class\(es\) \['only'\].*at least 2"):
        load_data(f"folder:{root}")


def test_folder_own_train_test_split(tmp_path):
    _write_folder(tmp_path / "ds" / "train", per_class=4)
    _write_folder(tmp_path / "ds" / "test", per_class=2)
    spec = f"folder:{tmp_path / 'ds'}"
    train, test, both = (load_data(spec, split="train"), load_data(spec, split="test"),
                         load_data(spec, split="all"))
    assert (len(train), len(test), len(both)) == (12, 6, 18)
    assert torch.equal(load_data(spec).images, train.images)  # the train split by default
    assert torch.equal(both.images[:12], train.images)
    assert "own train split" in train.source and train.spec == f"{spec}?split=train"


def test_cifar_mini_loads_5000_rgb_32px(cifar_mini):
    data = load_data(f"folder:{cifar_mini}/train")
    assert data.images.shape == (5000, 3, 32, 32)
    assert data.class_counts() == [500] * 10
    assert "airplane" in data.classes
    test = load_data(f"folder:{cifar_mini}", split="test")
    assert test.num_classes == 10 and test.fingerprint() != data.fingerprint()


# -- npz ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("layout", ["NHW", "NHWC", "NCHW", "float"])
def test_npz_layouts(tmp_path, layout):
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, size=(6, 5, 5, 3), dtype=np.uint8)
    y = np.array([0, 1, 2, 0, 1, 2])
    expected = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
    stored = {"NHW": x[..., 0], "NHWC": x, "NCHW": x.transpose(0, 3, 1, 2),
              "float": x.astype(np.float32) / 255.0}[layout]
    path = tmp_path / "d.npz"
    np.savez(path, x=stored, y=y, classes=np.array(["a", "b", "c"]))
    data = load_data(f"npz:{path}")
    assert data.classes == ["a", "b", "c"] and data.labels.tolist() == y.tolist()
    if layout == "NHW":
        assert torch.equal(data.images, expected[:, :1])
    else:
        assert torch.equal(data.images, expected)


def test_npz_without_classes_names_them_by_index(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x=np.zeros((4, 3, 3), np.uint8), y=np.array([0, 1, 2, 1]))
    assert load_data(f"npz:{path}").classes == ["0", "1", "2"]


def test_npz_pickled_object_array_is_refused(tmp_path):
    path = tmp_path / "obj.npz"
    np.savez(path, x=np.zeros((2, 3, 3), np.uint8), y=np.array([0, 1]),
             classes=np.array([{"a": 1}, "b"], dtype=object))
    with pytest.raises(GanaugDataError, match=r"pickled object array.*never loads"):
        load_data(f"npz:{path}")


@pytest.mark.parametrize("x, y, classes, message", [
    (np.zeros((3, 4, 4), np.uint8), np.array([0, 1]), None, r"3 images but 'y' has 2 labels"),
    (np.zeros((3, 4, 4), np.uint8), np.array([0, 1, 5]), ["a", "b"],
     r"labels range over \[0, 5\] but there are 2 classes.*\[0, 1\]"),
    (np.full((2, 4, 4), 3.0), np.array([0, 1]), None, r"values in \[3\.0, 3\.0\].*float in \[0, 1\]"),
    (np.zeros((2, 4, 4, 5), np.uint8), np.array([0, 1]), None, r"shape \(2, 4, 4, 5\)"),
    (np.zeros((2, 4, 4), np.uint8), np.array([0.0, 1.0]), None, r"'y' must be a 1-D integer"),
])
def test_npz_errors(tmp_path, x, y, classes, message):
    path = tmp_path / "bad.npz"
    extra = {} if classes is None else {"classes": np.array(classes)}
    np.savez(path, x=x, y=y, **extra)
    with pytest.raises(GanaugDataError, match=message):
        load_data(f"npz:{path}")


def test_npz_missing_file_and_missing_arrays(tmp_path):
    with pytest.raises(GanaugDataError, match=r"does not exist.*numpy\.savez"):
        load_data(f"npz:{tmp_path / 'none.npz'}")
    np.savez(tmp_path / "k.npz", images=np.zeros((2, 3, 3), np.uint8))
    with pytest.raises(GanaugDataError, match=r"lacks array\(s\) \['x', 'y'\]"):
        load_data(f"npz:{tmp_path / 'k.npz'}")


# -- torchvision ----------------------------------------------------------------------------------
def test_torchvision_missing_files_say_how_to_fix(tmp_path):
    with pytest.raises(GanaugDataError, match=r"CIFAR10 is not in .*download=True.*torchvision:CIFAR10:ROOT"):
        load_data("torchvision:cifar10", root=str(tmp_path), download=False)  # offline
    with pytest.raises(GanaugDataError, match=r"MNIST is not in"):
        load_data(f"torchvision:Mnist:{tmp_path}", split="train")


def test_torchvision_unknown_name():
    with pytest.raises(GanaugDataError, match=r"Unknown torchvision dataset 'CIFAR11'.*'CIFAR10'"):
        load_data("torchvision:CIFAR11")


# -- spec parsing ---------------------------------------------------------------------------------
@pytest.mark.parametrize("spec, message", [
    ("mnist", (r"Unknown dataset spec 'mnist'.*mnist5k, digits, folder:PATH.*"
              r"Did you mean 'mnist5k' \(offline\) or 'torchvision:MNIST'\?")),
    ("cifar10", r"Did you mean 'torchvision:CIFAR10'"),
    ("folder:", r"needs a PATH after 'folder:'"),
    ("", r"Empty dataset spec"),
    ("mnist5k?per_clas=3", r"Unknown option 'per_clas'.*Did you mean 'per_class'"),
    ("mnist5k?size=big", r"size='big'.*not a valid int"),
])
def test_bad_specs(spec, message):
    with pytest.raises(GanaugDataError, match=message):
        load_data(spec)


def test_parse_spec_keeps_paths_and_options():
    assert parse_spec("folder:/a/b?c") == ("folder", "/a/b?c", {})
    assert parse_spec("mnist5k?split=test&seed=3") == ("mnist5k", "", {"split": "test", "seed": "3"})
    assert parse_spec("torchvision:CIFAR10:/data") == ("torchvision", "CIFAR10:/data", {})


def test_canonical_spec_reloads_the_same_images():
    data = load_data("digits", split="train", per_class=7, seed=4, size=6, channels=3)
    assert data.spec == "digits?split=train&per_class=7&seed=4&size=6&channels=3"
    again = load_data(data.spec)
    assert again.fingerprint() == data.fingerprint()


# -- options --------------------------------------------------------------------------------------
def test_size_and_channels(mnist):
    data = load_data("mnist5k", per_class=2, size=16, channels=3)
    assert data.images.shape == (20, 3, 16, 16) and data.image_size == 16
    assert torch.equal(data.images[:, 0], data.images[:, 2])
    from torchvision.transforms.v2.functional import resize

    src = load_data("mnist5k", per_class=2)
    assert torch.equal(data.images[:, :1], resize(src.images, [16, 16], antialias=True))


@pytest.mark.parametrize("kwargs, message", [
    ({"size": 0}, r"size \(pixels per side\) must be an integer from 1 to 4096, got 0.*size=32"),
    ({"size": 2.5}, r"got 2\.5"),
    ({"channels": 2}, r"channels must be 1 \(grey\) or 3 \(RGB\), got 2"),
    ({"split": "val"}, r"split must be 'train', 'test' or 'all', got 'val'"),
    ({"split": "test", "holdout": 1.5}, r"holdout must be a fraction in \(0, 1\), got 1\.5"),
    ({"per_class": 0}, r"per_class must be an integer >= 1, got 0.*per_class=50"),
    ({"per_class": 200}, r"per_class=200 needs 200 images of class '0', which has only 178"),
    ({"imbalance": 0.5}, r"imbalance must be a finite ratio >= 1.*got 0\.5"),
])
def test_option_errors(kwargs, message):
    with pytest.raises(GanaugDataError, match=message):
        load_data("digits", **kwargs)


def test_split_is_stratified_disjoint_and_seed_independent(digits):
    train_a = load_data("digits", split="train", per_class=20, seed=0)
    train_b = load_data("digits", split="train", per_class=20, seed=1)
    test = load_data("digits", split="test")
    full_train = load_data("digits", split="train")
    assert len(full_train) + len(test) == len(digits)
    rows = {tuple(r) for r in digits.images.flatten(1).tolist()}
    assert len(rows) > 1700  # digits rows are almost all distinct, so row identity is a fair test
    test_rows = {tuple(r) for r in test.images.flatten(1).tolist()}
    for train in (train_a, train_b, full_train):
        assert not test_rows & {tuple(r) for r in train.images.flatten(1).tolist()}
    # stratified: every class keeps ~20 % in test
    fracs = np.array(test.class_counts()) / np.array(digits.class_counts())
    assert np.all(np.abs(fracs - 0.2) < 0.02)


def test_per_class_is_seeded(digits):
    a, b, c = (subset_per_class(digits, 5, seed=s) for s in (0, 0, 1))
    assert a.class_counts() == [5] * 10
    assert a.fingerprint() == b.fingerprint() and a.fingerprint() != c.fingerprint()
    assert len({tuple(r) for r in a.images.flatten(1).tolist()}) == 50  # no image twice


def test_long_tail_counts_follow_the_formula():
    counts = long_tail_counts(100, 5, 10.0)
    assert counts == [round(100 * 10 ** (-k / 4)) for k in range(5)]
    assert counts[0] / counts[-1] == pytest.approx(10.0)
    assert long_tail_counts(7, 3, 1.0) == [7, 7, 7]


def test_long_tail_subset_is_seeded_and_ratio_holds(digits):
    a = long_tail_subset(digits, 10.0, seed=0)
    b = load_data("digits", imbalance=10, seed=0)
    c = long_tail_subset(digits, 10.0, seed=1)
    counts = a.class_counts()
    assert counts[0] == min(digits.class_counts()) and counts == sorted(counts, reverse=True)
    assert counts[0] / counts[-1] == pytest.approx(10.0, rel=0.05)
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()
    head = load_data("digits", imbalance=4, per_class=40)
    assert head.class_counts()[0] == 40 and head.class_counts()[-1] == 10


def test_long_tail_too_few_images():
    # counts for n_max=8, K=3, R=2: [8, 6, 4]; class c1 has only 5
    with pytest.raises(GanaugDataError, match=r"imbalance=2.0 needs 6 images of class 'c1', which has only 5"):
        long_tail_subset(_tiny((10, 5, 10)), 2.0, n_max=8)


def test_a_ratio_the_head_class_cannot_reach_is_refused():
    # `--imbalance 1000 --per-class 5` kept 5, 2, 1, 1, ... (a ratio of 5), and a folder whose
    # smallest class had 1 training image kept 1 of every class (a ratio of 1), while the
    # experiment's report said "long tail ratio 1000": the tail cannot hold less than 1 image.
    for n_max, ratio in ((5, 1000.0), (1, 1000.0), (5, 10.0)):
        with pytest.raises(GanaugDataError, match=rf"imbalance={ratio:g} needs at least "
                                                  rf"{ratio:g} images of the head class.*{n_max}"):
            long_tail_subset(_tiny((10, 10, 10)), ratio, n_max=n_max)
    with pytest.raises(GanaugDataError, match=r"imbalance=100 needs .*Use per_class=100 or more "):
        load_data("digits", imbalance=100, per_class=5)
    # A ratio beyond the largest class: no per_class can reach it, and the advice said
    # "per_class >= 1000" (for 1e300 a 301-digit number) on digits' ~180 images per class.
    for ratio in (1000, 1e300):
        with pytest.raises(GanaugDataError, match=r"No class has .* images \(the largest has "
                                                  r"\d+\)\. Use imbalance <= 5\.$") as err:
            load_data("digits", imbalance=ratio, per_class=5)
        assert "per_class >=" not in str(err.value)
    assert long_tail_subset(_tiny((10, 10, 10)), 10.0, n_max=10).class_counts() == [10, 3, 1]


# -- the container --------------------------------------------------------------------------------
def test_fingerprint_sees_pixels_labels_and_classes():
    a = _tiny()
    assert a.fingerprint() == _tiny().fingerprint()
    b = _tiny()
    b.images[0, 0, 0, 0] ^= 1
    c = _tiny()
    c.labels[0] = 1
    d = _tiny()
    d.classes[0] = "other"
    assert len({a.fingerprint(), b.fingerprint(), c.fingerprint(), d.fingerprint()}) == 4


def test_subset_copies_and_keeps_classes():
    data = _tiny()
    sub = data.subset([3, 0])
    assert sub.labels.tolist() == [0, 0] and torch.equal(sub.images[1], data.images[0])
    sub.images[1].zero_()
    assert data.images[0].any()
    assert sub.classes == data.classes and sub.spec == ""


def test_to_dataset_behaves_like_image_folder(digits):
    from torchvision.transforms import v2

    ds = digits.subset(range(10)).to_dataset()
    img, label = ds[3]
    assert img.mode == "L" and img.size == (8, 8) and label == digits.labels[3].item()
    np.testing.assert_array_equal(np.array(img), digits.images[3, 0].numpy())
    assert ds.classes == digits.classes and ds.class_to_idx["7"] == 7 and len(ds.targets) == 10
    ds.transform = v2.Compose([v2.PILToTensor(), v2.ToDtype(torch.float32, scale=True)])
    ds.target_transform = lambda y: y + 100
    x, y = ds[3]
    assert x.shape == (1, 8, 8) and float(x.max()) <= 1.0 and y == label + 100
    loader = torch.utils.data.DataLoader(ds, batch_size=4)
    xb, yb = next(iter(loader))
    assert xb.shape == (4, 1, 8, 8) and yb.tolist() == [t + 100 for t in ds.targets[:4]]


def test_rgb_to_dataset_gives_rgb_pil():
    data = load_data("digits", per_class=1, channels=3)
    img, _ = data.to_dataset()[0]
    assert img.mode == "RGB"


# -- reporting ------------------------------------------------------------------------------------
def test_describe_reports_counts_shape_range_and_mean(digits):
    text = describe(digits)
    assert "images:   1,797" in text and "1x8x8 (grey)" in text and "range:    0..255" in text
    assert f"{digits.images.float().mean():.1f}" in text
    for name, n in zip(digits.classes, digits.class_counts(), strict=True):
        assert any(line.split() == [name, str(n)] for line in text.splitlines())


def test_save_data_grid_refuses_a_path_inside_a_class_folder_of_the_data(tmp_path):
    from PIL import Image

    root = tmp_path / "data"
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(np.full((6, 6), 9 * i, np.uint8)).save(root / c / f"{i}.png")
    data = load_data(f"folder:{root}")
    with pytest.raises(GanaugDataError, match=r"path='.*grid\.png' is inside .*data'.*Write it "
                                              r"outside"):
        save_data_grid(data, root / "b" / "grid.png")
    assert sorted(p.name for p in (root / "b").iterdir()) == ["0.png", "1.png"]


def test_save_data_grid_writes_png(tmp_path, digits):
    path = save_data_grid(digits, tmp_path / "g.png", per_row=4)
    img = Image.open(path)
    assert img.format == "PNG" and img.size[0] > 50 and img.size[1] > 100


# -- the source table -----------------------------------------------------------------------------
def test_spec_forms_come_from_the_source_table():
    from ganaug._sources import SOURCES
    from ganaug.data import SPEC_FORMS

    assert list(SOURCES) == ["mnist5k", "digits", "folder", "npz", "torchvision"]
    assert SPEC_FORMS == ("mnist5k", "digits", "folder:PATH", "npz:PATH", "torchvision:NAME[:ROOT]")
    with pytest.raises(GanaugDataError, match=r"needs a NAME after 'torchvision:'"):
        parse_spec("torchvision:")


def test_bundled_reader_through_the_table(digits):
    from ganaug._sources import SOURCES, Source

    src = SOURCES["digits"].read("", split="train", size=None, root=None, download=False)
    assert isinstance(src, Source) and src.own_split is False  # the split is drawn by load_data
    assert src.description == "scikit-learn digits (1,797 images, 8x8)"
    assert torch.equal(src.images, digits.images) and torch.equal(src.labels, digits.labels)
    src.images[0] = 0  # callers get a copy: the cached arrays stay untouched
    assert torch.equal(SOURCES["digits"].read("").images, digits.images)


def test_folder_reader_through_the_table(tmp_path):
    from ganaug._sources import SOURCES

    root = tmp_path / "split"
    _write_folder(root / "train", per_class=2, grey_one=False)
    _write_folder(root / "test", per_class=1, grey_one=False)
    src = SOURCES["folder"].read(str(root), split="test", size=None, root=None, download=False)
    assert src.own_split is True and src.classes == ["cat", "dog", "eel"]
    assert src.images.shape == (3, 3, 8, 8) and src.labels.tolist() == [0, 1, 2]
    assert src.description.endswith("(3 RGB images, its own test split)")
    assert SOURCES["folder"].read(str(root)).labels.tolist() == [0, 0, 1, 1, 2, 2]  # train
    both = SOURCES["folder"].read(str(root), split="all")
    assert both.labels.tolist() == [0, 0, 1, 1, 2, 2, 0, 1, 2]  # train, then test


def test_npz_reader_through_the_table(tmp_path):
    from ganaug._sources import SOURCES

    path = tmp_path / "d.npz"
    x = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    np.savez(path, x=x, y=np.array([1, 0]), classes=np.array(["a", "b"]))
    src = SOURCES["npz"].read(str(path))
    assert (src.classes, src.labels.tolist(), src.own_split) == (["a", "b"], [1, 0], False)
    assert torch.equal(src.images, torch.from_numpy(x)[:, None])
    assert src.description == f"npz file {path} (2 images)"


class _FakeCIFAR10:
    """Stands in for torchvision.datasets.CIFAR10: 2 train or 1 test 4x4 RGB images."""

    classes = ("plane", "car")

    def __init__(self, root, download, train):
        n = 2 if train else 1
        self.data = np.full((n, 4, 4, 3), 7 if train else 9, np.uint8)  # NHWC like CIFAR10
        self.targets = [1, 0][:n]


def test_torchvision_reader_through_the_table(monkeypatch, tmp_path):
    import torchvision.datasets as tvd

    from ganaug._sources import SOURCES

    monkeypatch.setattr(tvd, "CIFAR10", _FakeCIFAR10)
    src = SOURCES["torchvision"].read("cifar10", split="all", root=str(tmp_path), download=False)
    assert src.own_split is True and src.classes == ["plane", "car"]  # a list, like the others
    assert src.images.shape == (3, 3, 4, 4) and src.images[:, 0, 0, 0].tolist() == [7, 7, 9]
    assert src.labels.tolist() == [1, 0, 1]
    assert src.description == "torchvision CIFAR10 (3 images, all its own splits (train+test))"
    train = SOURCES["torchvision"].read("cifar10", split=None, root=str(tmp_path), download=False)
    assert train.labels.tolist() == [1, 0]  # the train split by default
    data = load_data(f"torchvision:CIFAR10:{tmp_path}", split="train", size=2, channels=1)
    assert data.images.shape == (2, 1, 2, 2) and data.labels.tolist() == [1, 0]
    assert data.spec == f"torchvision:CIFAR10:{tmp_path}?split=train&size=2&channels=1"


def test_size_then_channels_order_is_kept(tmp_path):
    from torchvision.transforms.v2.functional import resize, rgb_to_grayscale

    root = _write_folder(tmp_path / "imgs", grey_one=False)
    rgb = load_data(f"folder:{root}")
    grey = load_data(f"folder:{root}", size=5, channels=1)
    assert torch.equal(grey.images, rgb_to_grayscale(resize(rgb.images, [5, 5], antialias=True)))


def test_images_dataset_is_a_class_image_dataset(digits):
    from ganaug.data import ClassImageDataset

    ds = digits.subset([0, 1, 2]).to_dataset(target_transform=lambda y: y + 10)
    assert isinstance(ds, ClassImageDataset) and len(ds) == 3
    assert ds.class_to_idx["3"] == 3 and ds.targets == digits.labels[:3].tolist()
    img, target = ds[1]
    assert img.mode == "L" and target == digits.labels[1].item() + 10
    np.testing.assert_array_equal(np.array(img), digits.images[1, 0].numpy())

    class Ones(ClassImageDataset):
        def __init__(self):
            self.classes, self.class_to_idx, self.targets = ["x", "y"], {"x": 0, "y": 1}, [1]

        def image(self, index):
            return torch.ones(3, 2, 2, dtype=torch.uint8)

    img, target = Ones()[0]
    assert img.mode == "RGB" and np.array(img).max() == 1 and target == 1


def test_numpy_size_and_channels_are_accepted():
    data = load_data("digits", per_class=1, size=np.int64(6), channels=np.int64(3))
    assert data.images.shape == (10, 3, 6, 6)
    assert data.spec == "digits?per_class=1&seed=0&size=6&channels=3"
    with pytest.raises(GanaugDataError, match=r"channels must be 1 \(grey\) or 3 \(RGB\), got True"):
        load_data("digits", channels=True)

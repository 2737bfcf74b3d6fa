"""ganaug.albumentations.GANAugment: types, seeding, workers, serialisation, errors."""

from __future__ import annotations

import re

import albumentations as A
import numpy as np
import pytest
import torch

import ganaug.albumentations as GA
from ganaug.errors import GanaugConfigError, GanaugDataError


def _pipe(path, seed, p=1.0, **kw):
    kw.setdefault("classes", "generator")  # the int labels below are the generator's indices
    return A.Compose([GA.GANAugment(path, p=p, **kw), A.HorizontalFlip(p=0.5)], seed=seed)


@pytest.mark.parametrize("image", [
    np.zeros((20, 24, 3), np.uint8),
    np.zeros((16, 16), np.uint8),
    np.zeros((16, 16, 1), np.uint8),
    np.zeros((8, 8, 3), np.float32),
], ids=["uint8-rgb-resized", "grey-2d", "grey-hw1", "float32"])
def test_types_and_shapes_preserved(model_path, image):
    out = _pipe(model_path, seed=0)(image=image, label=1)
    assert out["label"] == 1
    assert out["image"].shape == image.shape and out["image"].dtype == image.dtype
    assert out["image"].std() > 0
    if image.dtype == np.float32:
        assert out["image"].min() >= 0.0 and out["image"].max() <= 1.0


def test_compose_seed_reproduces(model_path):
    x = np.zeros((16, 16, 3), np.uint8)
    runs = []
    for seed in (3, 3, 4):
        pipe = _pipe(model_path, seed=seed, p=0.5)
        runs.append([pipe(image=x, label=i % 3)["image"] for i in range(6)])
    a, b, c = runs
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    assert not all(np.array_equal(u, v) for u, v in zip(a, c))


def test_p_zero_leaves_image(model_path):
    x = np.full((16, 16, 3), 5, np.uint8)
    out = _pipe(model_path, seed=0, p=0.0)(image=x, label=0)["image"]
    assert np.array_equal(out, x) or np.array_equal(out, x[:, ::-1])


def test_rate_within_binomial_bounds(model_path):
    aug = A.Compose([GA.GANAugment(model_path, p=0.3, classes="generator")], seed=0)
    x = np.zeros((16, 16, 3), np.uint8)
    n = 600
    hits = sum(int(aug(image=x, label=i % 3)["image"].any()) for i in range(n))
    assert abs(hits - 0.3 * n) <= 4 * np.sqrt(n * 0.3 * 0.7)


def test_serialisation_round_trip(model_path, tmp_path):
    aug = _pipe(model_path, seed=0, p=0.7, label_key="y", bank_size=8, truncation=0.8)
    d = A.to_dict(aug)
    saved = d["transform"]["transforms"][0]
    assert saved["__class_fullname__"] == "ganaug.albumentations.GANAugment"
    assert saved["generator"] == model_path and saved["label_key"] == "y"
    assert (saved["classes"], saved["only_classes"]) == ("generator", None)
    assert (saved["p"], saved["bank_size"], saved["truncation"]) == (0.7, 8, 0.8)
    A.save(aug, str(tmp_path / "aug.json"))
    for back in (A.from_dict(d), A.load(str(tmp_path / "aug.json"))):
        t = back.transforms[0]
        assert isinstance(t, GA.GANAugment)
        assert (t.generator, t.p, t.label_key, t.bank_size, t.truncation) == (
            model_path, 0.7, "y", 8, 0.8)
        assert t.classes == "generator" and t.class_map.by_index
        back.set_random_seed(9)
        aug.set_random_seed(9)
        x = np.zeros((16, 16, 3), np.uint8)
        for i in range(4):
            assert np.array_equal(back(image=x, y=i % 3)["image"], aug(image=x, y=i % 3)["image"])


class _AlbuDataset(torch.utils.data.Dataset):
    def __init__(self, aug):
        self.aug = aug

    def __len__(self):
        return 8

    def __getitem__(self, i):
        out = self.aug(image=np.zeros((16, 16, 3), np.uint8), label=0)
        return torch.from_numpy(out["image"])


def _epoch(path, loader_seed):
    ds = _AlbuDataset(A.Compose([GA.GANAugment(path, p=1.0, classes="generator")], seed=1))
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2,
                                         generator=torch.Generator().manual_seed(loader_seed))
    return list(loader)


def test_workers_reseeded(model_path):
    first = _epoch(model_path, 0)
    # worker 0 made batch 0, worker 1 batch 1; without reseeding they would be identical.
    assert not torch.equal(first[0], first[1])
    again = _epoch(model_path, 0)
    assert all(torch.equal(a, b) for a, b in zip(first, again))


def test_error_missing_label(model_path):
    with pytest.raises(GanaugDataError, match=r"needs the label.*aug\(image=img, label=y\)"):
        _pipe(model_path, seed=0)(image=np.zeros((8, 8, 3), np.uint8))


def test_error_label_out_of_range(model_path):
    with pytest.raises(GanaugDataError, match=r"Label 9 is out of range.*names no class of the "
                                              r"generator \(labels 0\.\.2, classes='generator'\)"):
        _pipe(model_path, seed=0)(image=np.zeros((8, 8, 3), np.uint8), label=9)


@pytest.mark.parametrize("kwargs,match", [
    ({"p": 1.5}, r"p must be a finite number in \[0, 1\]"),
    ({"bank_size": 0}, r"bank_size must be an integer >= 1"),
    ({"truncation": 1.5}, r"truncation must be a finite number in \(0, 1\], got 1\.5"),
])
def test_config_errors(model_path, kwargs, match):
    with pytest.raises(GanaugConfigError, match=match):
        GA.GANAugment(model_path, **kwargs)


# -- parity with the torchvision transform (issue 14.4) and class identity by name (12.1) ----
def _decode(image: np.ndarray, num_classes: int = 3) -> int:
    return round(float(image.mean()) / 255 * (num_classes - 1))


def test_labels_map_by_name(const_generator):
    aug = A.Compose([GA.GANAugment(const_generator, p=1.0, classes=["c", "a"])], seed=0)
    x = np.full((8, 8, 3), 60, np.uint8)
    assert [_decode(aug(image=x, label=y)["image"]) for y in (0, 1)] == [2, 0]
    by_dict = GA.GANAugment(const_generator, p=1.0, classes={"b": 0})
    assert _decode(by_dict(image=x, label=0)["image"]) == 1
    with pytest.raises(GanaugDataError, match=r"Label 1 is out of range.*classes= \(\{'b': 0\}\)"):
        by_dict(image=x, label=1)
    with pytest.raises(GanaugDataError, match=r"does not know: zebra\. The generator's classes "
                                              r"are: a, b, c"):
        GA.GANAugment(const_generator, classes={"a": 0, "zebra": 1})
    by_index = GA.GANAugment(const_generator, p=1.0, classes="generator")
    assert [_decode(by_index(image=x, label=y)["image"]) for y in range(3)] == [0, 1, 2]


def test_an_int_label_with_no_classes_is_refused_and_a_name_works(const_generator):
    aug = GA.GANAugment(const_generator, p=1.0, seed=0)
    x = np.full((8, 8, 3), 60, np.uint8)
    with pytest.raises(GanaugConfigError, match=r"ganaug\.albumentations\.GANAugment got the int "
                                                r"label 1 but does not know which class each "
                                                r"label is\. Pass the dataset's classes: classes="):
        aug(image=x, label=1)
    assert _decode(aug(image=x, label="c")["image"]) == 2  # class names need no classes=
    assert _decode(A.Compose([aug], seed=0)(image=x, label="b")["image"]) == 1


def test_natural_order_maps_by_name_with_classes(tmp_path):
    from conftest import ClassConstNet

    from ganaug.generator import Generator

    gen = Generator(ClassConstNet(num_classes=3), classes=["c1", "c10", "c2"])  # plain sort
    natural = {"c1": 0, "c2": 1, "c10": 2}  # timm's reader
    x = np.full((8, 8, 3), 60, np.uint8)
    aug = GA.GANAugment(gen, p=1.0, classes=natural)
    assert [_decode(aug(image=x, label=y)["image"]) for y in range(3)] == [0, 2, 1]
    with pytest.raises(GanaugConfigError, match=r"does not know which class each label is.*"
                                                r"\(c1, c10, c2\)"):
        GA.GANAugment(gen, p=1.0)(image=x, label=2)


def test_only_classes_limits_replacement(const_generator):
    aug = GA.GANAugment(const_generator, p=1.0, only_classes=["b"], classes="generator")
    x = np.full((8, 8, 3), 60, np.uint8)
    assert [int(aug(image=x, label=y)["image"].mean()) for y in range(3)] == [60, 128, 60]
    assert int(aug(image=x, label="b")["image"].mean()) == 128
    with pytest.raises(GanaugDataError, match=r"Unknown class 'bb'.*Did you mean 'b'"):
        GA.GANAugment(const_generator, only_classes=["bb"])
    for bad in ([3], [0], ["a", 1]):
        with pytest.raises(GanaugConfigError, match=r"only_classes takes class names, got \d: an "
                                                    r"index could mean"):
            GA.GANAugment(const_generator, only_classes=bad, classes="generator")
    with pytest.raises(GanaugConfigError, match=r"only_classes must be a list of class names, "
                                                r"got 'b'"):
        GA.GANAugment(const_generator, only_classes="b")
    for bad in ("b", 1, ["a", 1]):
        with pytest.raises(GanaugConfigError, match=r"classes= must be the dataset's class names "
                                                    rf"in label order.*got {re.escape(repr(bad))}"):
            GA.GANAugment(const_generator, classes=bad)


def test_a_bare_int_only_classes_is_refused(const_generator):
    with pytest.raises(GanaugConfigError, match=r"only_classes must be a list of class names"):
        GA.GANAugment(const_generator, only_classes=1)


def test_reuse_serves_each_image_reuse_times(model_path):
    aug = GA.GANAugment(model_path, p=1.0, bank_size=2, reuse=3, seed=0, classes="generator")
    x = np.zeros((16, 16, 3), np.uint8)
    images = [aug(image=x, label=0)["image"].tobytes() for _ in range(6)]
    assert len(set(images)) == 2 and all(images.count(i) == 3 for i in set(images))
    with pytest.raises(GanaugConfigError, match=r"reuse must be an integer >= 1"):
        GA.GANAugment(model_path, reuse=0)


@pytest.mark.parametrize("target", [
    {"mask": np.zeros((8, 8), np.uint8)},
    {"masks": [np.zeros((8, 8), np.uint8)]},
    {"bboxes": np.array([[0.1, 0.1, 0.5, 0.5]])},
    {"keypoints": np.array([[1.0, 2.0]])},
], ids=["mask", "masks", "bboxes", "keypoints"])
def test_spatial_targets_are_refused(const_generator, target):
    aug = GA.GANAugment(const_generator, p=0.0)
    key = next(iter(target))
    with pytest.raises(GanaugDataError, match=f"so the sample's {key} would no longer match"):
        aug(image=np.zeros((8, 8, 3), np.uint8), label=0, **target)


@pytest.mark.parametrize("extra", [
    {"images": np.zeros((4, 8, 8, 3), np.uint8)},
    {"image": np.zeros((8, 8, 3), np.uint8), "images": np.zeros((2, 8, 8, 3), np.uint8)},
], ids=["images-alone", "image-and-images"])
def test_an_image_batch_with_one_label_is_refused(const_generator, extra):
    # Every image of the batch came back as the same fake of the one label's class.
    pipe = A.Compose([GA.GANAugment(const_generator, p=1.0)], seed=0)
    with pytest.raises(GanaugDataError, match=r"one label names the class of one image.*images"):
        pipe(label=1, **extra)


def test_an_additional_image_target_is_refused(const_generator):
    # additional_targets={"image2": "image"}: image2 was replaced by the same fake as image.
    pipe = A.Compose([GA.GANAugment(const_generator, p=1.0, classes="generator")], seed=0,
                     additional_targets={"image2": "image"})
    x = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(GanaugDataError, match=r"one label names the class of one image.*image2"):
        pipe(image=x, image2=x, label=1)
    assert _decode(pipe(image=x, label=1)["image"]) == 1  # without image2 it runs


@pytest.mark.filterwarnings("ignore:Got processor for bboxes")
def test_empty_boxes_pass_through_compose(const_generator):
    aug = A.Compose([GA.GANAugment(const_generator, p=1.0, classes="generator")],
                    bbox_params=A.BboxParams(format="albumentations", label_fields=[]), seed=0)
    out = aug(image=np.zeros((8, 8, 3), np.uint8), label=2, bboxes=np.zeros((0, 4)))
    assert _decode(out["image"]) == 2 and len(out["bboxes"]) == 0


def test_to_dict_of_a_live_generator_fails_at_to_dict(const_generator):
    pipe = A.Compose([GA.GANAugment(const_generator, p=0.5)])
    with pytest.raises(GanaugConfigError, match=r"live generator.*pass the path"):
        A.to_dict(pipe)


def test_new_arguments_serialise(model_path, tmp_path):
    aug = GA.GANAugment(model_path, p=1.0, classes=["c", "b"], only_classes=["b"], reuse=2)
    d = A.to_dict(A.Compose([aug]))
    saved = d["transform"]["transforms"][0]
    assert (saved["classes"], saved["only_classes"]) == ({"c": 0, "b": 1}, ["b"])
    A.save(A.Compose([aug]), str(tmp_path / "aug.json"))
    for back in (A.from_dict(d).transforms[0], A.load(str(tmp_path / "aug.json")).transforms[0]):
        assert (back.classes, back.only_classes, back.reuse) == ({"c": 0, "b": 1}, ["b"], 2)
        assert back.bank.reuse == 2 and back.class_map.table == [2, 1]
        x = np.zeros((16, 16, 3), np.uint8)
        assert back(image=x, label=0)["image"] is x  # label 0 is "c": not in only_classes
        assert back(image=x, label=1)["image"].any()  # label 1 is "b": replaced
    by_index = A.to_dict(A.Compose([GA.GANAugment(model_path, classes="generator")]))
    assert A.from_dict(by_index).transforms[0].class_map.by_index


def test_after_normalize_is_refused(const_generator):
    pipe = A.Compose([A.Normalize(), GA.GANAugment(const_generator, p=0.0)])
    with pytest.raises(GanaugDataError, match=r"not \[0, 1\].*before A\.Normalize"):
        pipe(image=np.full((8, 8, 3), 200, np.uint8), label=0)


def test_truncation_checked_at_construction_everywhere(model_path):
    from ganaug.augment import GANAugment, SampleBank

    for make in (lambda: GANAugment(model_path, truncation=0.0),
                 lambda: GA.GANAugment(model_path, truncation=0.0),
                 lambda: SampleBank(model_path, truncation=float("nan"))):
        with pytest.raises(GanaugConfigError, match=r"truncation must be a finite number in "
                                                    r"\(0, 1\]"):
            make()


@pytest.mark.filterwarnings("ignore:Got processor for")
@pytest.mark.parametrize("kind, value", [
    ("mask", np.ones((8, 8), np.uint8)),
    ("masks", [np.ones((8, 8), np.uint8)]),
    ("bboxes", np.array([[1.0, 1.0, 5.0, 5.0]])),
    ("keypoints", np.array([[1.0, 2.0]])),
])
def test_an_additional_spatial_target_is_refused(const_generator, kind, value):
    # additional_targets={"mask2": "mask"}: the image was replaced and mask2 (boxes2, ...) kept
    # describing the old one; only the default names (mask, bboxes, ...) were refused
    params = {"bbox_params": A.BboxParams(format="pascal_voc", label_fields=[])} \
        if kind == "bboxes" else {"keypoint_params": A.KeypointParams(format="xy")} \
        if kind == "keypoints" else {}
    pipe = A.Compose([GA.GANAugment(const_generator, p=0.0)], seed=0,
                     additional_targets={"extra2": kind}, **params)
    x = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(GanaugDataError, match=r"so the sample's extra2 would no longer match"):
        pipe(image=x, extra2=value, label=1)

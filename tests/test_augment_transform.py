"""The torchvision v2 GANAugment (make_params, then a deterministic transform) and with_labels."""

from __future__ import annotations

import math
import pickle
from typing import ClassVar

import numpy as np
import PIL.Image
import pytest
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from ganaug.augment import GANAugment, SampleBank, match_image, with_labels
from ganaug.errors import GanaugConfigError, GanaugDataError


def _replaced(seed, label, like, generator):
    return match_image(SampleBank(generator, seed=seed).draw(label), like)


# -- types and sizes -------------------------------------------------------------------------
@pytest.mark.parametrize("make", [
    lambda: PIL.Image.new("RGB", (20, 24), (9, 9, 9)),
    lambda: PIL.Image.new("L", (16, 16), 9),
    lambda: torch.full((3, 16, 16), 9, dtype=torch.uint8),
    lambda: torch.full((1, 12, 12), 0.04),
    lambda: tv_tensors.Image(torch.full((3, 8, 8), 9, dtype=torch.uint8)),
], ids=["pil-rgb-resized", "pil-L", "uint8", "float-1ch", "tv-image"])
def test_type_size_and_content_preserved(make, tiny_generator):
    img = make()
    out, label = GANAugment(tiny_generator, p=1.0, seed=3, classes="generator")(img, 2)
    assert label == 2 and type(out) is type(img)
    expected = _replaced(3, 2, img, tiny_generator)
    if isinstance(img, PIL.Image.Image):
        assert out.mode == img.mode and out.size == img.size
        np.testing.assert_array_equal(np.asarray(out), np.asarray(expected))
        assert np.asarray(out).std() > 0  # a generated image, not the flat input
    else:
        assert out.shape == img.shape and out.dtype == img.dtype
        torch.testing.assert_close(out, expected)
        assert not torch.equal(out, img)
        if out.is_floating_point():
            assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_dict_sample_and_compose(tiny_generator):
    img = tv_tensors.Image(torch.zeros(3, 16, 16, dtype=torch.uint8))
    sample = {"image": img, "label": torch.tensor(1), "id": "x7"}
    out = GANAugment(tiny_generator, p=1.0, seed=0, classes="generator")(sample)
    assert set(out) == {"image", "label", "id"} and out["id"] == "x7"
    assert out["label"] is sample["label"] and isinstance(out["image"], tv_tensors.Image)
    torch.testing.assert_close(out["image"].as_subclass(torch.Tensor),
                               SampleBank(tiny_generator, seed=0).draw(1))
    pipe = v2.Compose([GANAugment(tiny_generator, p=1.0, seed=0, classes="generator"),
                       v2.ToDtype(torch.float32, scale=True)])
    x, y = pipe(torch.zeros(3, 16, 16, dtype=torch.uint8), 1)
    assert y == 1 and x.dtype == torch.float32 and 0 < float(x.mean()) < 1


# -- make_params / transform -----------------------------------------------------------------
def test_transform_applies_fixed_params_deterministically(const_generator):
    t = GANAugment(const_generator, p=0.0)
    fake = torch.full((3, 16, 16), 200, dtype=torch.uint8)
    pil = PIL.Image.new("L", (8, 6), 3)
    out = t.transform(pil, {"apply": True, "fake": fake[:1]})
    assert out.mode == "L" and out.size == (8, 6)
    assert np.asarray(out).tolist() == np.full((6, 8), 200).tolist()
    assert np.asarray(t.transform(pil, {"apply": True, "fake": fake})).max() in (199, 200)  # luma
    floats = t.transform(torch.zeros(3, 4, 4), {"apply": True, "fake": fake})
    torch.testing.assert_close(floats, torch.full((3, 4, 4), 200 / 255))
    img = torch.zeros(3, 16, 16, dtype=torch.uint8)
    assert t.transform(img, {"apply": False, "fake": None}) is img


def test_make_params_draws_the_flip_and_the_fake(const_generator):
    img = torch.zeros(3, 16, 16, dtype=torch.uint8)
    t = GANAugment(const_generator, p=1.0, seed=0, only_classes=["b", "c"])
    params = t.make_params([img], cls=2)
    assert params["apply"] is True
    assert params["fake"].dtype == torch.uint8 and torch.all(params["fake"] == 255)
    assert t.make_params([img], cls=0) == {"apply": False, "fake": None}  # not in only_classes
    assert t.make_params([], cls=2) == {"apply": False, "fake": None}  # nothing to replace
    never = GANAugment(const_generator, p=0.0)
    state = torch.get_rng_state()
    assert never.make_params([img], cls=1) == {"apply": False, "fake": None}
    assert not torch.equal(torch.get_rng_state(), state)  # the flip is drawn all the same


def test_p_zero_is_identity(tiny_generator):
    img = torch.zeros(3, 16, 16, dtype=torch.uint8)
    out = GANAugment(tiny_generator, p=0.0, classes="generator")(img, 0)
    assert out[0] is img and out[1] == 0


def test_replacement_rate_within_binomial_bounds(tiny_generator):
    torch.manual_seed(0)
    t = GANAugment(tiny_generator, p=0.3, seed=0, bank_size=128, classes="generator")
    img = torch.zeros(3, 16, 16, dtype=torch.uint8)
    n = 1000
    hits = sum(int(not torch.equal(t(img, i % 3)[0], img)) for i in range(n))
    assert abs(hits - 0.3 * n) <= 4 * math.sqrt(n * 0.3 * 0.7)


def test_only_classes_limits_replacement(tiny_generator):
    t = GANAugment(tiny_generator, p=1.0, only_classes=["c"], seed=0, classes="generator")
    img = torch.zeros(3, 16, 16, dtype=torch.uint8)
    assert t(img, 0)[0] is img and t(img, 1)[0] is img
    assert not torch.equal(t(img, 2)[0], img)
    assert t(img, "a")[0] is img and not torch.equal(t(img, "c")[0], img)  # names alike


def test_same_torch_seed_gives_same_draws(tiny_generator):
    img = torch.zeros(3, 16, 16, dtype=torch.uint8)
    runs = []
    for _ in range(2):
        torch.manual_seed(4)
        t = GANAugment(tiny_generator, p=0.5, seed=1, classes="generator")
        runs.append(torch.stack([t(img, i % 3)[0] for i in range(12)]))
    torch.testing.assert_close(runs[0], runs[1])


# -- DataLoader workers ----------------------------------------------------------------------
class _Zeros(torch.utils.data.Dataset):
    classes: ClassVar[list[str]] = ["a", "b", "c"]
    targets: ClassVar[list[int]] = [0, 1, 2, 0, 1, 2, 0, 1]

    def __len__(self):
        return 8

    def __getitem__(self, i):
        return torch.zeros(3, 16, 16, dtype=torch.uint8), self.targets[i]


def _epoch(model_path, seed):
    ds = with_labels(_Zeros(), GANAugment(model_path, p=1.0, seed=5))
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2,
                                         generator=torch.Generator().manual_seed(seed))
    return [b for b in loader]


def test_workers_reproducible_and_distinct(tiny_model_path):
    first, second = _epoch(tiny_model_path, 0), _epoch(tiny_model_path, 0)
    for (xa, ya), (xb, yb) in zip(first, second):
        torch.testing.assert_close(xa, xb)
        assert torch.equal(ya, yb)
    # batch 0 came from worker 0, batch 1 from worker 1: the first class-0 image of each
    # worker (item 0 vs item 6) differs, so the workers do not repeat each other.
    (x0, y0), (x1, y1) = first
    assert y0[0] == y1[2] == 0 and not torch.equal(x0[0], x1[2])
    other = _epoch(tiny_model_path, 1)
    assert not torch.equal(other[0][0], first[0][0])


def test_unseeded_transforms_in_one_worker_do_not_serve_the_same_fakes(tiny_model_path):
    # two datasets of a ConcatDataset, each with GANAugment(seed=None): in the main process they
    # drew different streams, but every worker seeded both banks from its seed alone, so
    # dataset B served exactly dataset A's fakes, class by class
    def concat():
        return torch.utils.data.ConcatDataset(
            [with_labels(_Zeros(), GANAugment(tiny_model_path, p=1.0)) for _ in range(2)])

    runs = []
    for _ in range(2):
        loader = torch.utils.data.DataLoader(concat(), batch_size=8, num_workers=1,
                                             generator=torch.Generator().manual_seed(3))
        runs.append([x for x, _ in loader])
    (first, second), again = runs
    assert not torch.equal(first, second)  # dataset A's items 0..7 vs dataset B's
    torch.testing.assert_close(runs[0], again)  # still reproducible under a seeded loader


def test_path_transform_pickles_small_and_works(tiny_model_path, tiny_generator):
    t = GANAugment(tiny_model_path, p=1.0, seed=2, classes=["a", "b", "c"],
                   only_classes=["a", "b"])
    assert not t.bank.source.loaded  # classes are read from the file header
    blob = pickle.dumps(t)
    weights = sum(v.numel() * 4 for v in tiny_generator.state_dict().values())
    assert len(blob) < weights / 4
    out, _ = pickle.loads(blob)(torch.zeros(3, 16, 16, dtype=torch.uint8), 1)
    torch.testing.assert_close(out, SampleBank(tiny_generator, seed=2).draw(1))


# -- errors ----------------------------------------------------------------------------------
def test_error_no_label(tiny_generator):
    with pytest.raises(GanaugDataError, match=r"needs the label.*with_labels"):
        GANAugment(tiny_generator)(PIL.Image.new("RGB", (8, 8)))


def test_error_label_out_of_range(tiny_generator):
    with pytest.raises(GanaugDataError, match=r"GANAugment: Label 5 is out of range.*3 classes.*"
                                              r"names no class of the generator \(labels 0\.\.2, "
                                              r"classes='generator'\)"):
        GANAugment(tiny_generator, classes="generator")(torch.zeros(3, 8, 8), 5)
    with pytest.raises(GanaugDataError, match=r"GANAugment: Label 2 is out of range.*2 classes.*"
                                              r"names no class of classes= \(\{'a': 0, 'b': 1\}\)"):
        GANAugment(tiny_generator, classes=["a", "b"])(torch.zeros(3, 8, 8), 2)


def test_error_float_label(tiny_generator):
    with pytest.raises(GanaugDataError, match="one integer class label"):
        GANAugment(tiny_generator, classes="generator")(torch.zeros(3, 8, 8),
                                                        torch.tensor([0.2, 0.8]))


@pytest.mark.parametrize("p", [-0.1, 1.5, "x"])
def test_error_bad_p(tiny_generator, p):
    with pytest.raises(GanaugConfigError, match=r"p must be a finite number in \[0, 1\]"):
        GANAugment(tiny_generator, p=p)


def test_error_bad_truncation_at_construction(tiny_model_path):
    with pytest.raises(GanaugConfigError, match=r"truncation must be a finite number in \(0, 1\]"):
        GANAugment(tiny_model_path, truncation=1.5)


def test_error_unknown_class_name(tiny_generator):
    with pytest.raises(GanaugDataError, match=r"GANAugment: Unknown class 'bb'.*Did you mean 'b'"):
        GANAugment(tiny_generator, only_classes=["bb"])
    with pytest.raises(GanaugDataError, match=r"classes= has classes the generator does not "
                                              r"know: bb\. The generator's classes are: a, b, c"):
        GANAugment(tiny_generator, classes=["bb"])
    with pytest.raises(GanaugDataError, match=r"GANAugment: Unknown class 'zz'\. Classes: a, b, c"):
        GANAugment(tiny_generator, p=1.0)(torch.zeros(3, 8, 8), "zz")


def test_error_batched_tensor(tiny_generator):
    with pytest.raises(GanaugDataError, match="BatchMixer"):
        GANAugment(tiny_generator, p=1.0, classes="generator")(torch.zeros(4, 3, 8, 8), 0)


def test_error_bad_model_path(tmp_path):
    with pytest.raises(Exception, match="missing.safetensors"):
        GANAugment(tmp_path / "missing.safetensors")


# -- with_labels -----------------------------------------------------------------------------
class _Pil(torch.utils.data.Dataset):
    """32x32 RGB PIL images (pixel value = 10 * index) with labels 0, 0, 1, 2."""

    classes: ClassVar[list[str]] = ["a", "b", "c"]
    class_to_idx: ClassVar[dict[str, int]] = {"a": 0, "b": 1, "c": 2}

    def __init__(self, with_targets=True):
        if with_targets:
            self.targets = [0, 0, 1, 2]

    def __len__(self):
        return 4

    def __getitem__(self, i):
        return PIL.Image.new("RGB", (32, 32), (10 * i,) * 3), [0, 0, 1, 2][i]


def test_with_labels_passes_label_and_attributes(tiny_generator):
    ds = with_labels(_Pil(), v2.Compose([GANAugment(tiny_generator, p=1.0, seed=0),
                                         v2.PILToTensor()]))
    assert len(ds) == 4 and ds.classes == ["a", "b", "c"] and ds.targets == [0, 0, 1, 2]
    assert ds.class_to_idx == {"a": 0, "b": 1, "c": 2}
    img, label = ds[3]
    assert label == 2 and img.shape == (3, 32, 32) and img.dtype == torch.uint8
    assert not torch.all(img == 30)  # replaced by a generated image
    ds.label_transform = None  # the GAN step
    ds.transform = v2.PILToTensor()  # settable, like timm's create_loader does
    assert torch.all(ds[3][0] == 30)
    ds.transform = lambda img: np.asarray(img)  # one-argument transforms get the image only
    assert ds[2][0].shape == (32, 32, 3) and ds[2][1] == 1


def test_with_labels_without_attributes():
    ds = with_labels(_Pil(with_targets=False), None)
    assert not hasattr(ds, "targets") and ds[1][1] == 0


# -- samples whose other entries describe the image ---------------------------------------------
def _spatial(kind):
    box = tv_tensors.BoundingBoxes([[1, 1, 5, 5]], format="XYXY", canvas_size=(8, 8))
    return {"mask": tv_tensors.Mask(torch.ones(8, 8, dtype=torch.uint8)), "boxes": box,
            "keypoints": tv_tensors.KeyPoints([[2, 3]], canvas_size=(8, 8))}[kind]


@pytest.mark.parametrize("kind", ["mask", "boxes", "keypoints"])
@pytest.mark.parametrize("p", [0.0, 1.0])
def test_error_spatial_targets_would_go_stale(tiny_generator, kind, p):
    # the image is replaced, the mask/boxes/keypoints described the old one (the albumentations
    # transform refuses them too); refused whatever p, not at random inside a DataLoader
    img = tv_tensors.Image(torch.zeros(3, 8, 8, dtype=torch.uint8))
    name = {"mask": "Mask", "boxes": "BoundingBoxes", "keypoints": "KeyPoints"}[kind]
    with pytest.raises(GanaugDataError, match=rf"replaces the whole image, so the sample's {name}"):
        GANAugment(tiny_generator, p=p, classes="generator")(
            {"image": img, kind: _spatial(kind), "label": 1})


def test_empty_boxes_pass(tiny_generator):
    img = tv_tensors.Image(torch.zeros(3, 8, 8, dtype=torch.uint8))
    boxes = tv_tensors.BoundingBoxes(torch.zeros(0, 4), format="XYXY", canvas_size=(8, 8))
    out = GANAugment(tiny_generator, p=1.0, seed=0, classes="generator")(
        {"image": img, "boxes": boxes, "label": 1})
    assert out["boxes"] is boxes and not torch.equal(out["image"], img)


@pytest.mark.parametrize("sample", [
    lambda: ("images/cat/1.png", 1),
    lambda: (tv_tensors.Video(torch.zeros(2, 3, 8, 8, dtype=torch.uint8)), 1),
    lambda: {"path": "x.png", "label": 1},
], ids=["path", "video", "dict-without-image"])
@pytest.mark.parametrize("p", [0.0, 1.0])
def test_error_sample_without_image(tiny_generator, sample, p):
    # it used to come back unchanged with p=1: GANAugment silently did nothing
    with pytest.raises(GanaugDataError, match=r"found no image.*PIL image"):
        GANAugment(tiny_generator, p=p, classes="generator")(sample())


def test_error_image_without_values(tiny_generator):
    # a meta-device image died in torch ("Tensor.item() cannot be called on meta tensors")
    with pytest.raises(GanaugDataError, match=r"meta device.*no values"):
        GANAugment(tiny_generator, p=1.0, classes="generator")(
            torch.empty(3, 8, 8, device="meta"), 1)

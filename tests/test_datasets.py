"""with_labels, SyntheticDataset (determinism, cache, filter) and MixedDataset."""

from __future__ import annotations

import csv
import math
from typing import ClassVar

import numpy as np
import PIL.Image
import pytest
import torch
from torch import nn
from torchvision.transforms import v2

from ganaug.datasets import MixedDataset, SyntheticDataset, balance_counts, with_labels
from ganaug.errors import GanaugConfigError, GanaugDataError
from ganaug.transforms import GANAugment

REAL_TARGETS = [0, 0, 0, 0, 0, 0, 1, 1, 1, 2]  # long tail: 6, 3, 1


class RealSet(torch.utils.data.Dataset):
    """32x32 RGB PIL images (pixel value = 10 * index) with long-tail labels."""

    classes: ClassVar[list[str]] = ["a", "b", "c"]

    def __init__(self, with_targets=True, transform=None):
        if with_targets:
            self.targets = list(REAL_TARGETS)
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
        self.transform = transform

    def __len__(self):
        return len(REAL_TARGETS)

    def __getitem__(self, i):
        img = PIL.Image.new("RGB", (32, 32), (10 * i,) * 3)
        return (self.transform(img) if self.transform else img), REAL_TARGETS[i]


# -- with_labels -----------------------------------------------------------------------------
def test_with_labels_passes_label_and_attributes(tiny_generator):
    ds = with_labels(RealSet(), v2.Compose([GANAugment(tiny_generator, p=1.0, seed=0),
                                            v2.PILToTensor()]))
    assert len(ds) == 10 and ds.classes == ["a", "b", "c"] and ds.targets == REAL_TARGETS
    assert ds.class_to_idx == {"a": 0, "b": 1, "c": 2}
    img, label = ds[9]
    assert label == 2 and img.shape == (3, 32, 32) and img.dtype == torch.uint8
    assert not torch.all(img == 90)  # replaced by a generated image
    ds.transform = v2.PILToTensor()  # settable, like timm's create_loader does
    assert torch.all(ds[9][0] == 90)
    ds.transform = lambda img: np.asarray(img)  # one-argument transforms get the image only
    assert ds[3][0].shape == (32, 32, 3) and ds[3][1] == 0


def test_with_labels_without_attributes():
    ds = with_labels(RealSet(with_targets=False), None)
    assert not hasattr(ds, "targets") and ds[1][1] == 0


# -- SyntheticDataset ------------------------------------------------------------------------
def test_synthetic_layout_and_items(tiny_generator):
    ds = SyntheticDataset(tiny_generator, counts={"a": 5, "c": 3}, chunk_size=2, seed=1)
    assert len(ds) == 8 and ds.targets == [0] * 5 + [2] * 3 and ds.counts == [5, 0, 3]
    assert ds.classes == ["a", "b", "c"] and ds.class_to_idx["c"] == 2
    img, label = ds[6]
    assert isinstance(img, PIL.Image.Image) and img.size == (16, 16) and label == 2
    assert ds.locate(6) == (2, 1) and ds.index_of(2, 1) == 6
    with pytest.raises(IndexError):
        ds[8]


def test_synthetic_items_do_not_depend_on_access_order(tiny_generator):
    fwd = SyntheticDataset(tiny_generator, n_per_class=5, chunk_size=2, seed=3)
    rev = SyntheticDataset(tiny_generator, n_per_class=5, chunk_size=2, seed=3)
    a = [fwd.image(i) for i in range(15)]
    b = [rev.image(i) for i in reversed(range(15))][::-1]
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y)
    assert len({t.numpy().tobytes() for t in a}) == 15
    other = SyntheticDataset(tiny_generator, n_per_class=5, chunk_size=2, seed=4)
    assert not torch.equal(other.image(0), a[0])


def test_synthetic_one_call_per_chunk_and_generate(tiny_generator, monkeypatch):
    calls = []
    original = tiny_generator.generate
    monkeypatch.setattr(tiny_generator, "generate",
                        lambda z, y, **k: calls.append(len(y)) or original(z, y, **k))
    ds = SyntheticDataset(tiny_generator, n_per_class=5, chunk_size=4)
    ds.generate()
    assert sorted(calls) == [1, 1, 1, 4, 4, 4] and ds.cache == "memory"
    _ = [ds[i] for i in range(15)]
    assert len(calls) == 6


def test_synthetic_transform_and_target_transform(tiny_generator):
    ds = SyntheticDataset(tiny_generator, n_per_class=2, transform=v2.PILToTensor(),
                          target_transform=lambda y: y + 10)
    img, label = ds[3]
    assert img.shape == (3, 16, 16) and label == 11
    torch.testing.assert_close(img, ds.image(3))


def test_synthetic_cache_dir_round_trip(tiny_generator, tmp_path, monkeypatch):
    cache = tmp_path / "synth"
    first = SyntheticDataset(tiny_generator, n_per_class=3, chunk_size=2, cache=cache).generate()
    assert sorted(p.name for p in (cache / "b").iterdir()) == ["000000.png", "000001.png", "000002.png"]
    with open(cache / "manifest.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 9
    assert rows[4] == {"path": "b/000001.png", "class": "b", "label": "1", "seed": "0", "index": "1"}
    monkeypatch.setattr(tiny_generator, "generate", lambda *a, **k: pytest.fail("regenerated"))
    again = SyntheticDataset(tiny_generator, n_per_class=3, chunk_size=2, cache=cache)
    for i in range(9):
        torch.testing.assert_close(again.image(i), first.image(i))
    from torchvision.datasets import ImageFolder

    folder = ImageFolder(str(cache))
    assert folder.classes == ["a", "b", "c"] and len(folder) == 9


def test_synthetic_reads_and_matches_ganaug_export(tiny_generator, tmp_path, monkeypatch):
    from ganaug.export import export_image_folder

    export_image_folder(tiny_generator, tmp_path / "exp", n_per_class=4, seed=3, progress=False)
    fresh = SyntheticDataset(tiny_generator, n_per_class=4, seed=3, chunk_size=3)
    expected = [fresh.image(i).clone() for i in range(12)]
    monkeypatch.setattr(tiny_generator, "generate", lambda *a, **k: pytest.fail("regenerated"))
    cached = SyntheticDataset(tiny_generator, counts=[4, 2, 1], seed=3, cache=tmp_path / "exp")
    for c, j in [(0, 0), (0, 3), (1, 1), (2, 0)]:
        torch.testing.assert_close(cached.image(cached.index_of(c, j)), expected[4 * c + j])


def test_synthetic_cache_dir_refuses_foreign_folder(tiny_generator, tmp_path):
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("x")
    with pytest.raises(GanaugConfigError, match=r"not empty and holds no export\.json"):
        SyntheticDataset(tiny_generator, n_per_class=2, cache=tmp_path / "other")


def test_synthetic_cache_dir_other_settings(tiny_generator, tmp_path):
    SyntheticDataset(tiny_generator, n_per_class=2, cache=tmp_path / "s", seed=0)
    with pytest.raises(GanaugConfigError, match=r"other settings \(seed differ\)"):
        SyntheticDataset(tiny_generator, n_per_class=2, cache=tmp_path / "s", seed=1)


@pytest.mark.parametrize("kwargs,match", [
    ({"n_per_class": 2, "counts": [1, 1, 1]}, r"exactly one of n_per_class"),
    ({}, r"exactly one of n_per_class"),
    ({"counts": {"dog": 3}}, r"Unknown class 'dog' in counts"),
    ({"counts": [1, 2]}, r"2 entries for 3 classes"),
    ({"n_per_class": -1}, r"integers >= 0, got -1"),
    ({"n_per_class": 1, "min_confidence": 2}, r"min_confidence must be a probability"),
    ({"n_per_class": 1, "seed": -1}, r"seed must be an int >= 0, got -1"),
])
def test_synthetic_config_errors(tiny_generator, kwargs, match):
    with pytest.raises(GanaugConfigError, match=match):
        SyntheticDataset(tiny_generator, **kwargs)


class EveryOther(nn.Module):
    """Fake classifier: confident in ``cls`` for even positions of each batch, else unsure."""

    def __init__(self, cls, num_classes=3):
        super().__init__()
        self.cls, self.num_classes, self.seen, self.kept = cls, num_classes, 0, 0

    def forward(self, x):
        logits = torch.zeros(len(x), self.num_classes)
        logits[0::2, self.cls] = 10.0
        self.seen += len(x)
        self.kept += len(x[0::2])
        return logits


def test_filter_acceptance_accounting(tiny_generator):
    clf = EveryOther(cls=1)
    ds = SyntheticDataset(tiny_generator, counts={"b": 6}, chunk_size=6, filter=clf,
                          min_confidence=0.9, seed=0)
    unfiltered = SyntheticDataset(tiny_generator, counts={"b": 6}, chunk_size=6, seed=0)
    images = torch.stack([ds.image(i) for i in range(6)])
    assert clf.seen == 12 and ds.acceptance == {"b": 0.5}
    assert ds.acceptance["b"] == clf.kept / clf.seen
    # the kept images are candidates at even positions, so some differ from the unfiltered set
    assert not torch.equal(images, torch.stack([unfiltered.image(i) for i in range(6)]))
    assert len({t.numpy().tobytes() for t in images}) == 6


def test_filter_unreachable_acceptance(tiny_generator):
    never = EveryOther(cls=0)  # confident in class a only, so class b is never accepted
    ds = SyntheticDataset(tiny_generator, counts={"b": 4}, filter=never, max_tries=10)
    with pytest.raises(GanaugDataError,
                       match=r"Class 'b': only 0 of 10 .*0\.0%.*min_confidence=0\.9.*train the generator longer"):
        ds[0]


# -- MixedDataset ----------------------------------------------------------------------------
@pytest.mark.parametrize("ratio", [0.25, 0.5, 1.3, 0.0])
def test_append_exact_ratio(tiny_generator, ratio):
    ds = MixedDataset(RealSet(), tiny_generator, ratio=ratio)
    n_synth = math.floor(ratio * 10 + 0.5)
    assert len(ds) == 10 + n_synth and int(ds.synthetic_mask.sum()) == n_synth
    assert sum(ds.class_counts("synthetic").values()) == n_synth
    assert ds.class_counts("real") == {"a": 6, "b": 3, "c": 1}


def test_append_items_match_real_format_and_labels(tiny_generator):
    ds = MixedDataset(RealSet(), tiny_generator, ratio=1.0, transform=v2.PILToTensor())
    assert ds.targets[:10] == REAL_TARGETS
    for i in range(len(ds)):
        img, label = ds[i]
        assert img.shape == (3, 32, 32) and label == ds.targets[i]
        assert ds.is_synthetic(i) == (i >= 10)
    assert torch.all(ds[4][0] == 40)
    counts = np.bincount(ds.targets, minlength=3).tolist()
    assert dict(zip("abc", counts)) == ds.class_counts()


@pytest.mark.parametrize("balance,ratio,expected", [
    ("match_max", None, {"a": 6, "b": 6, "c": 6}),
    ("uniform", None, {"a": 6, "b": 6, "c": 6}),
    ("uniform", 0.4, {"a": 6, "b": 4, "c": 4}),
    ("uniform", 1.1, {"a": 7, "b": 7, "c": 7}),
    ({"a": 2, "c": 5}, None, {"a": 6, "b": 3, "c": 5}),
])
def test_balance_counts(tiny_generator, balance, ratio, expected):
    ds = MixedDataset(RealSet(with_targets=False), tiny_generator, balance=balance, ratio=ratio)
    assert ds.class_counts() == expected
    assert len(ds) == sum(expected.values())


def test_balance_uniform_water_filling():
    assert balance_counts([6, 3, 1], "uniform", budget=3) == [0, 1, 2]
    assert balance_counts([5, 5], "uniform", budget=3) == [2, 1]


def test_append_whole_synthetic_dataset(tiny_generator):
    synth = SyntheticDataset(tiny_generator, counts=[1, 2, 3])
    ds = MixedDataset(RealSet(), synth)
    assert ds.class_counts() == {"a": 7, "b": 5, "c": 4}
    torch.testing.assert_close(v2.functional.pil_to_tensor(ds[15][0]),
                               v2.functional.resize(synth.image(5), [32, 32], antialias=True))


def test_replace_mode_rate_and_seed(tiny_generator):
    def pattern(seed, p):
        ds = MixedDataset(RealSet(), tiny_generator, mode="replace", p=p, seed=seed)
        out = []
        for _ in range(40):
            for i in range(10):
                img, label = ds[i]
                assert label == REAL_TARGETS[i] and img.size == (32, 32)
                out.append(ds.is_synthetic(i))
                assert out[-1] == (np.asarray(img).std() > 0)
        return out

    a = pattern(0, 0.3)
    assert a == pattern(0, 0.3) and a != pattern(1, 0.3)
    assert abs(sum(a) - 120) <= 4 * math.sqrt(400 * 0.3 * 0.7)
    assert not any(pattern(0, 0.0))


@pytest.mark.parametrize("kwargs,match", [
    ({"ratio": 0.5, "balance": "match_max"}, r"ratio= cannot be combined with balance='match_max'"),
    ({"balance": "rebalance"}, r"Unknown balance 'rebalance'"),
    ({"p": 0.5}, r"p= is for mode='replace'"),
    ({"mode": "replace"}, r"needs p="),
    ({"mode": "replace", "p": 0.5, "ratio": 1}, r"ratio= and balance= are for mode='append'"),
    ({"mode": "mix"}, r"Unknown mode 'mix'"),
    ({}, r"ratio=0\.5"),
    ({"balance": {"zebra": 3}}, r"Unknown class 'zebra'"),
])
def test_mixed_config_errors(tiny_generator, kwargs, match):
    with pytest.raises(GanaugConfigError, match=match):
        MixedDataset(RealSet(), tiny_generator, **kwargs)


def test_mixed_class_mismatch(tiny_generator):
    real = RealSet()
    real.classes = ["x", "y", "z"]
    with pytest.raises(GanaugDataError, match=r"classes \(x, y, z\) differ from the generator's \(a, b, c\)"):
        MixedDataset(real, tiny_generator, ratio=1.0)

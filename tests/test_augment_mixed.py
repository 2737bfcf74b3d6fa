"""MixedDataset (append only: exact ratio, long-tail balance; refuses what adds nothing) and
balance helpers."""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import PIL.Image
import pytest
import torch
from torchvision.transforms import v2

from ganaug.augment import (
    MixedDataset,
    SyntheticDataset,
    Teacher,
    balance_counts,
    proportional_counts,
    weighted_loss,
)
from ganaug.errors import GanaugConfigError, GanaugDataError

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



# -- MixedDataset ----------------------------------------------------------------------------
def test_append_bounds_a_synthetic_part_memory_cannot_keep(tiny_generator, monkeypatch):
    # append mode kept every synthetic image it read (cache="memory"), whatever the ratio: a
    # shuffled epoch of ratio=10**5 grew the process until it ran out of memory. A part that
    # cannot fit is now held up to memory_mb (chunks regenerated when dropped), still lazily
    monkeypatch.setattr("ganaug._imaging.available_memory", lambda: 2**20)
    big = MixedDataset(tiny_generator, RealSet(), ratio=10**5)
    assert len(big) == 10 + 10**6 and big.synthetic.cache is None
    big.synthetic.memory_mb = 0.25  # 256 KiB: one 256-image chunk of 3x16x16 is 192 KiB
    first = big[10][0]
    for i in range(10, 10 + 4 * 256, 7):
        big[i]
    assert big.synthetic._held <= 256 * 768 and len(big.synthetic._chunks) == 1
    assert np.array_equal(np.asarray(big[10][0]), np.asarray(first))  # regenerated alike
    assert MixedDataset(tiny_generator, RealSet(), ratio=100).synthetic.cache == "memory"


@pytest.mark.parametrize("ratio", [0.25, 0.5, 1.3, 0.05])
def test_append_exact_ratio(tiny_generator, ratio):
    ds = MixedDataset(tiny_generator, RealSet(), ratio=ratio)
    n_synth = math.floor(ratio * 10 + 0.5)
    assert len(ds) == 10 + n_synth and int(ds.synthetic_mask.sum()) == n_synth
    assert sum(ds.class_counts("synthetic").values()) == n_synth
    assert ds.class_counts("real") == {"a": 6, "b": 3, "c": 1}


def test_append_items_match_real_format_and_labels(tiny_generator):
    ds = MixedDataset(tiny_generator, RealSet(), ratio=1.0, transform=v2.PILToTensor())
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
    ds = MixedDataset(tiny_generator, RealSet(with_targets=False), balance=balance, ratio=ratio)
    assert ds.class_counts() == expected
    assert len(ds) == sum(expected.values())


@pytest.mark.parametrize("kwargs,match", [
    ({"ratio": 0.0}, (r"ratio=0\.0 adds no synthetic image to 10 real ones \(round\(ratio \* "
                     r"len\(real\)\) is 0\); use a larger ratio")),
    ({"ratio": 0.04}, r"ratio=0\.04 adds no synthetic image to 10 real ones"),
    ({"balance": {"a": 6, "c": 1}}, (r"balance=\{'a': 6, 'c': 1\} adds no synthetic image: the "
                                    r"real classes already reach its targets \(counts 6, 3, 1\)")),
])
def test_a_setting_that_adds_nothing_is_refused(const_generator, kwargs, match):
    # ratio=0 (or one rounding to 0) and targets already met gave a MixedDataset of the real data
    with pytest.raises(GanaugConfigError, match=match):
        MixedDataset(const_generator, RealSet(), **kwargs)


@pytest.mark.parametrize("balance", ["uniform", "match_max"])
def test_balancing_balanced_data_is_refused_unless_given_a_budget(const_generator, balance):
    real = [(PIL.Image.new("RGB", (4, 4)), label) for label in (0, 1, 2, 0, 1, 2)]
    with pytest.raises(GanaugConfigError, match=rf"balance='{balance}' adds no synthetic image: "
                                                r"the real classes already reach its targets "
                                                r"\(counts 2, 2, 2\).*give a budget: ratio=0\.5"):
        MixedDataset(const_generator, real, balance=balance, classes="generator")
    budget = MixedDataset(const_generator, real, balance="uniform", ratio=1.0, classes="generator")
    assert budget.class_counts() == {"a": 4, "b": 4, "c": 4}


def test_balance_uniform_water_filling():
    assert balance_counts([6, 3, 1], "uniform", budget=3) == [0, 1, 2]
    assert balance_counts([5, 5], "uniform", budget=3) == [2, 1]


def test_append_whole_synthetic_dataset(tiny_generator):
    synth = SyntheticDataset(tiny_generator, counts=[1, 2, 3])
    ds = MixedDataset(synth, RealSet())
    assert ds.class_counts() == {"a": 7, "b": 5, "c": 4}
    torch.testing.assert_close(v2.functional.pil_to_tensor(ds[15][0]),
                               v2.functional.resize(synth.image(5), [32, 32], antialias=True))


@pytest.mark.parametrize("kwargs,match", [
    ({"ratio": 0.5, "balance": "match_max"}, r"ratio= cannot be combined with balance='match_max'"),
    ({"balance": "rebalance"}, r"Unknown balance 'rebalance'"),
    ({"ratio": -0.5}, r"ratio must be a finite number in \[0, inf\), got -0\.5"),
    ({}, r"With a generator, say how many synthetic images to add: ratio=0\.5"),
    ({"balance": {"zebra": 3}}, r"Unknown class 'zebra' in balance"),
    ({"ratio": 0.5, "return_mask": 1}, r"return_mask must be True or False, got 1"),
])
def test_mixed_config_errors(tiny_generator, kwargs, match):
    with pytest.raises(GanaugConfigError, match=match):
        MixedDataset(tiny_generator, RealSet(), **kwargs)


def test_mixed_class_mismatch(tiny_generator):
    real = RealSet()
    real.classes = ["x", "y", "z"]
    real.class_to_idx = {"x": 0, "y": 1, "z": 2}
    with pytest.raises(GanaugDataError, match=r"has classes the generator does not know: x, y, "
                                              r"z\. The generator's classes are: a, b, c"):
        MixedDataset(tiny_generator, real, ratio=1.0)
    with pytest.raises(GanaugDataError, match=r"classes= has classes the generator does not know: "
                                              r"x\. The generator's classes are: a, b, c"):
        MixedDataset(tiny_generator, RealSet(), ratio=1.0, classes=["x", "b", "c"])


def test_a_class_refusal_names_the_real_dataset_not_an_argument_never_passed(tiny_generator):
    # The names came from the real dataset's own class_to_idx: the refusal says so, not
    # "classes=", an argument the caller never passed.
    real = RealSet()
    real.classes, real.class_to_idx = ["x", "y", "z"], {"x": 0, "y": 1, "z": 2}
    with pytest.raises(GanaugDataError, match="^the real dataset has classes the generator") as err:
        MixedDataset(tiny_generator, real, ratio=1.0)
    assert "classes=" not in str(err.value).split(".")[0], str(err.value)


def test_a_mixed_dataset_from_a_path_pickles_small(tiny_model_path, tiny_generator):
    # DataLoader workers under spawn get the dataset pickled: a model file stays a path, never
    # the weights, before and after the generator is loaded to draw an item
    import pickle

    ds = MixedDataset(tiny_model_path, RealSet(), ratio=0.5)
    weights = sum(v.numel() * 4 for v in tiny_generator.state_dict().values())
    assert not ds.synthetic.source.loaded and len(pickle.dumps(ds)) < weights / 4
    img = ds[12][0]
    assert ds.synthetic.source.loaded and len(pickle.dumps(ds)) < weights / 4
    twin = pickle.loads(pickle.dumps(ds))
    assert np.array_equal(np.asarray(twin[12][0]), np.asarray(img)) and twin[12][1] == ds[12][1]


def test_proportional_counts_exact_sum():
    assert proportional_counts([6, 3, 1], 5) == [3, 2, 0]  # ties go to the lower class
    assert proportional_counts([6, 3, 1], 4) == [2, 1, 1]
    assert proportional_counts([1, 1], 3) == [2, 1] and proportional_counts([0, 0], 4) == [0, 0]


# -- class identity by name, edge cases ------------------------------------------------------
def _folder(root, names, per_class):
    for name, n in zip(names, per_class):
        (root / name).mkdir(parents=True)
        for j in range(n):
            PIL.Image.new("RGB", (16, 16), (7, 7, 7)).save(root / name / f"{j}.png")
    return root


def _decode(img, classes):
    """The generator class name of a ClassConstNet image (uint8 tensor)."""
    return classes[round(float(img.float().mean()) / 255 * (len(classes) - 1))]


def test_timm_natural_sort_dataset_maps_by_name(tmp_path):
    from conftest import ClassConstNet
    from timm.data import create_dataset

    from ganaug.generator import Generator

    names = ["c1", "c2", "c10"]  # timm's natural order; the generator's is c1, c10, c2
    gen = Generator(ClassConstNet(num_classes=3), classes=sorted(names))
    ds = create_dataset("", root=str(_folder(tmp_path / "d", names, [4, 2, 1])))
    assert not hasattr(ds, "classes") and ds.reader.class_to_idx == {"c1": 0, "c2": 1, "c10": 2}
    mixed = MixedDataset(gen, ds, balance="match_max", transform=v2.PILToTensor())
    assert mixed.classes == names and mixed.class_to_idx == ds.reader.class_to_idx
    synthetic = [i for i in range(len(mixed)) if mixed.is_synthetic(i)]
    assert len(synthetic) == 5
    for i in synthetic:
        img, label = mixed[i]
        assert _decode(img, sorted(names)) == names[label]
    assert mixed.class_counts() == {"c1": 4, "c2": 4, "c10": 4}


def test_a_folder_with_only_some_classes(tmp_path, const_generator):
    from torchvision.datasets import ImageFolder

    real = ImageFolder(str(_folder(tmp_path / "f", ["c", "a"], [1, 3])))  # {a: 0, c: 1}
    mixed = MixedDataset(const_generator, real, balance="match_max", transform=v2.PILToTensor())
    assert mixed.classes == ["a", "c"] and mixed.class_counts("synthetic") == {"a": 0, "c": 2}
    for i in range(4, 6):
        img, label = mixed[i]
        assert label == 1 and _decode(img, "abc") == "c"
    sub = MixedDataset(const_generator, torch.utils.data.Subset(real, [0, 3]), ratio=1.0,
                       transform=v2.PILToTensor())  # the classes of the Subset's dataset
    assert [_decode(sub[i][0], "abc") for i in range(2, 4)] == ["a", "c"]
    assert [sub[i][1] for i in range(4)] == [0, 1, 0, 1]
    synth = SyntheticDataset(const_generator, counts={"b": 2})
    with pytest.raises(GanaugDataError, match=r"images of class\(es\) b, which the real dataset "
                                              r"does not have \(its classes: a, c\)"):
        MixedDataset(synth, real)
    explicit = MixedDataset(const_generator, RealSet(with_targets=False), ratio=1.0,
                            classes=["c", "b", "a"], transform=v2.PILToTensor())
    img, label = explicit[len(explicit) - 1]
    assert explicit.classes[label] == _decode(img, "abc")


def test_empty_real_dataset_is_refused(tiny_generator):
    with pytest.raises(GanaugDataError, match=r"The real dataset is empty \(0 items\)"):
        MixedDataset(tiny_generator,
                     torch.utils.data.TensorDataset(torch.zeros(0, 3, 8, 8),
                                                    torch.zeros(0, dtype=torch.int64)), ratio=1.0)


def test_truncation_is_the_synthetic_datasets_and_checked_at_construction(tiny_model_path):
    with pytest.raises(GanaugConfigError, match=r"truncation must be a finite number in \(0, 1\], "
                                                r"got 1\.5"):
        SyntheticDataset(tiny_model_path, 10, truncation=1.5)
    synth = SyntheticDataset(tiny_model_path, 10, truncation=0.5)
    ok = MixedDataset(synth, RealSet())
    assert ok.synthetic is synth and ok.synthetic.truncation == 0.5
    assert ok.class_counts("synthetic") == {"a": 10, "b": 10, "c": 10}
    img = v2.functional.pil_to_tensor(ok[10][0])
    torch.testing.assert_close(img, v2.functional.resize(synth.image(0), [32, 32], antialias=True))


def test_labels_without_a_class_are_refused(const_generator):
    real = RealSet()
    real.class_to_idx = {"a": 0, "c": 1}
    real.classes = ["a", "c"]
    with pytest.raises(GanaugDataError, match=r"MixedDataset: label 2 names no class of "
                                              r"the real dataset \(\{'a': 0, 'c': 1\}\)"):
        MixedDataset(const_generator, real, ratio=1.0)
    with pytest.raises(GanaugDataError, match=r"must use the labels 0\.\.1, got \{'a': 0, 'c': 2\}"):
        MixedDataset(const_generator, real, ratio=1.0, classes={"a": 0, "c": 2})


@pytest.mark.parametrize("kwargs,error,match", [
    ({"classes": {}}, GanaugDataError, r"classes= is empty; pass the dataset's class names"),
    ({"classes": []}, GanaugDataError, r"classes= is empty; pass the dataset's class names"),
    ({"classes": {"a": "first"}}, GanaugDataError,
     r"classes= must map class names \(str\) to int labels in 0\.\.65535, got 'a': 'first'"),
    ({"classes": ["a", "a"]}, GanaugDataError, r"classes= names a more than once"),
    ({"classes": 5}, GanaugConfigError,
     (r"classes= must be the dataset's class names in label order \(dataset\.classes\), its "
     r"\{name: label\} mapping \(dataset\.class_to_idx\), or 'generator'.*got 5")),
])
def test_every_entry_point_refuses_bad_class_arguments(const_generator, kwargs, error, match):
    from ganaug.augment import BatchMixer

    for build in (lambda: BatchMixer(const_generator, **kwargs),
                  lambda: SyntheticDataset(const_generator, 1, **kwargs),
                  lambda: MixedDataset(const_generator, RealSet(), ratio=1.0, **kwargs)):
        with pytest.raises(error, match=match):
            build()


@pytest.mark.parametrize("targets,match", [
    ([0, 1.7, 2], r"Label 1 of the real dataset is 1\.7 \(float\)"),
    (["a", "b"], r"Label 0 of the real dataset is 'a' \(str\)"),
    (torch.tensor([0.0, 1.0]), r"Label 0 of the real dataset is 0\.0 \(float\)"),
    ([True, False], r"is True \(bool\)"),
])
def test_non_integer_labels_are_refused_not_truncated(tiny_generator, targets, match):
    real = RealSet()
    real.targets = targets
    with pytest.raises(GanaugDataError, match=match):
        MixedDataset(tiny_generator, real, ratio=1.0)


class OneHotSet(RealSet):
    """RealSet whose items carry one-hot float labels (a dataset built for soft-target losses)."""

    def __init__(self):
        super().__init__(with_targets=False)

    def __getitem__(self, i):
        return super().__getitem__(i)[0], torch.eye(3)[REAL_TARGETS[i]]


def test_one_hot_labels_are_refused_with_a_fix_that_is_accepted(tiny_generator):
    # The message said "its own target_transform can convert them", which MixedDataset then
    # refuses in turn (a real dataset's target_transform is moved to MixedDataset's).
    with pytest.raises(GanaugDataError, match=r"Label 0 of the real dataset is tensor") as err:
        MixedDataset(tiny_generator, OneHotSet(), ratio=1.0)
    assert "its own target_transform" not in str(err.value)
    assert "MixedDataset(target_transform=" in str(err.value)

    class IntLabels(torch.utils.data.Dataset):  # the fix the message names
        def __init__(self, dataset):
            self.dataset = dataset

        def __len__(self):
            return len(self.dataset)

        def __getitem__(self, i):
            img, label = self.dataset[i]
            return img, int(label.argmax())

    mixed = MixedDataset(tiny_generator, IntLabels(OneHotSet()), ratio=1.0,
                         target_transform=lambda y: torch.eye(3)[y])
    assert mixed.class_counts("real") == {"a": 6, "b": 3, "c": 1}
    torch.testing.assert_close(mixed[len(REAL_TARGETS)][1], torch.eye(3)[0])


def test_tensor_and_numpy_targets_are_read():
    from ganaug.augment import dataset_labels

    real = RealSet()
    for targets in (torch.tensor(REAL_TARGETS), np.asarray(REAL_TARGETS, dtype=np.int32)):
        real.targets = targets
        assert dataset_labels(real) == REAL_TARGETS
    real = RealSet(with_targets=False)
    assert dataset_labels(real) == REAL_TARGETS


def test_return_mask_must_be_a_bool(const_generator):
    # return_mask="no" was truthy: items came as (image, label, mask) triples
    with pytest.raises(GanaugConfigError, match=r"return_mask must be True or False, got 'no'"):
        MixedDataset(const_generator, RealSet(), ratio=0.5, return_mask="no")


class NormalisedSet(RealSet):
    """RealSet whose images were Normalize-d before MixedDataset: float tensors around 0."""

    def __getitem__(self, i):
        return torch.full((3, 32, 32), -1.5 + 0.1 * i), REAL_TARGETS[i]


def test_normalised_real_images_are_refused(const_generator):
    # [0, 1] synthetic images were mixed silently into a [-2, 2] normalised stream
    mixed = MixedDataset(const_generator, NormalisedSet(), ratio=0.5)
    index = len(mixed) - 1
    with pytest.raises(GanaugDataError, match=r"MixedDataset got a float image with values in "
                                              r"\[-1\.5, -1\.5\].*MixedDataset\(\.\.\., "
                                              r"transform=v2\.Compose"):
        mixed[index]


def test_a_negative_real_label_is_named(const_generator):
    # the message said "Real labels go up to 2 but the generator has 3 classes" for a -1
    real = [(PIL.Image.new("RGB", (4, 4)), label) for label in (0, -1, 2)]
    with pytest.raises(GanaugDataError, match=r"Real labels span -1\.\.2 but the generator has "
                                              r"3 classes \(labels 0\.\.2\); classes='generator' "
                                              r"does not fit"):
        MixedDataset(const_generator, real, ratio=0.5, classes="generator")
    with pytest.raises(GanaugDataError, match=r"label -1 names no class of classes="):
        MixedDataset(const_generator, real, ratio=0.5, classes=["a", "b", "c"])


def test_a_real_dataset_declaring_no_class_names_needs_classes(const_generator):
    # its labels were taken as the generator's class indices, silently
    real = [(PIL.Image.new("RGB", (4, 4), (v,) * 3), label) for v, label in ((0, 2), (9, 0))]
    with pytest.raises(GanaugConfigError, match=r"The real dataset \(list\) declares no class "
                                                r"names.*Pass classes=.*classes='generator'.*"
                                                r"\(a, b, c\)"):
        MixedDataset(const_generator, real, ratio=1.0)
    named = MixedDataset(const_generator, real, ratio=1.0, classes=["c", "b", "a"],
                         transform=v2.PILToTensor())
    assert named.classes == ["c", "b", "a"] and named.targets == [2, 0, 0, 2]
    assert [_decode(named[i][0], "abc") for i in (2, 3)] == ["c", "a"]  # label 0 is c
    by_index = MixedDataset(const_generator, real, ratio=1.0, classes="generator",
                            transform=v2.PILToTensor())
    assert by_index.classes == ["a", "b", "c"]
    assert [_decode(by_index[i][0], "abc") for i in (2, 3)] == ["a", "c"]


def test_mixed_indices_are_integers_in_range(const_generator):
    ds = MixedDataset(const_generator, RealSet(), ratio=0.5)
    assert ds[torch.tensor(3)][1] == ds[np.int64(3)][1] == ds[3][1]
    with pytest.raises(IndexError, match=r"index -16 is out of range for 15 items"):
        ds[-16]  # the message named the shifted index -1
    for bad in (1.5, "1", None):
        with pytest.raises(TypeError, match=r"indices must be integers, got"):
            ds[bad]
    with pytest.raises(TypeError, match=r"indices must be integers, got 1\.5"):
        ds.is_synthetic(1.5)  # answered False


def _uniform_by_heap(real_counts, budget):
    """balance_counts('uniform', budget) one image at a time, as it was computed before."""
    import heapq

    heap = [(n, c) for c, n in enumerate(real_counts)]
    heapq.heapify(heap)
    extra = [0] * len(real_counts)
    for _ in range(budget):
        n, c = heapq.heappop(heap)
        extra[c] += 1
        heapq.heappush(heap, (n + 1, c))
    return extra


def test_uniform_budget_is_the_one_at_a_time_fill():
    rng = np.random.default_rng(0)
    for _ in range(200):
        counts = rng.integers(0, 12, size=int(rng.integers(1, 6))).tolist()
        budget = int(rng.integers(0, 40))
        assert balance_counts(counts, "uniform", budget=budget) == \
            _uniform_by_heap(counts, budget), (counts, budget)


def test_a_huge_ratio_or_budget_is_lazy(const_generator):
    # ratio=1e9 built a list of 10**10 indices (and 'uniform' looped once per image): a hang
    import time

    start = time.perf_counter()
    ds = MixedDataset(const_generator, RealSet(), ratio=1e9)
    assert len(ds) == 10 + 10**10 and ds.class_counts("synthetic") == {
        "a": 6 * 10**9, "b": 3 * 10**9, "c": 10**9}
    assert ds[10][1] == 0 and ds[len(ds) - 1][1] == 2 and ds[-10**9 - 1][1] == 1
    uniform = MixedDataset(const_generator, RealSet(), balance="uniform", ratio=1e9)
    assert uniform.class_counts() == {"a": 3333333337, "b": 3333333337, "c": 3333333336}
    assert time.perf_counter() - start < 10


# -- labels of wrapped real datasets -------------------------------------------------------------
class _Counting(RealSet):
    """RealSet that counts the items read (a read decodes an image in a real dataset)."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.reads = 0

    def __getitem__(self, i):
        self.reads += 1
        return super().__getitem__(i)


def test_labels_of_subset_and_concat_are_read_from_targets(tiny_generator):
    # Subset (random_split, a train/val split) and ConcatDataset have no .targets: every image
    # was decoded once at construction just to read its label (an epoch of ImageFolder)
    from torch.utils.data import ConcatDataset, Subset

    from ganaug.augment import dataset_labels, with_labels

    base = _Counting()
    sub = Subset(base, np.array([9, 6, 0, 7]))
    assert dataset_labels(sub) == [2, 1, 0, 1] and base.reads == 0
    both = ConcatDataset([sub, Subset(base, [1])])
    assert dataset_labels(both) == [2, 1, 0, 1, 0] and base.reads == 0
    assert dataset_labels(with_labels(sub, None)) == [2, 1, 0, 1] and base.reads == 0
    assert with_labels(sub, None).targets == [2, 1, 0, 1]
    ds = MixedDataset(tiny_generator, sub, balance="match_max")
    assert ds.class_counts("real") == {"a": 1, "b": 2, "c": 1}
    assert base.reads <= 1  # the first real image, which synthetic images are matched to
    unlabelled = _Counting(with_targets=False)  # no targets anywhere: one pass, as before
    assert dataset_labels(Subset(unlabelled, [9, 0])) == [2, 0] and unlabelled.reads == 2


def test_targets_of_another_length_are_refused(tiny_generator):
    # len(real) items but .targets held more (or fewer) labels: MixedDataset's length, class
    # counts and items followed .targets, reading past the dataset or dropping its last items
    class Shorter(RealSet):
        def __len__(self):
            return 7

    with pytest.raises(GanaugDataError, match=r"targets holds 10 labels but the dataset has 7 "
                                              r"items"):
        MixedDataset(tiny_generator, Shorter(), ratio=0.5)


@pytest.mark.parametrize("labels", [torch.tensor([0, 1, 2, 0]), torch.tensor([[0], [1], [2], [0]]),
                                    np.array([0, 1, 2, 0], dtype=np.int32)])
def test_appended_labels_take_the_real_labels_type_so_batches_collate(const_generator, labels):
    # a TensorDataset's labels are 0-d tensors; synthetic items returned ints, and a batch holding
    # both failed in default_collate: "expected Tensor as element 4 in argument 0, but got int"
    from torch.utils.data import DataLoader, TensorDataset

    class Real(torch.utils.data.Dataset):
        def __len__(self):
            return len(labels)

        def __getitem__(self, i):
            return torch.zeros(3, 16, 16, dtype=torch.uint8), labels[i]

    for real in (Real(),) + ((TensorDataset(torch.zeros(4, 3, 16, 16, dtype=torch.uint8),
                                            labels),) if torch.is_tensor(labels) else ()):
        mixed = MixedDataset(const_generator, real, ratio=1.0, classes="generator",
                             return_mask=True)
        first, synthetic = mixed[0][1], mixed[len(real)][1]
        assert type(synthetic) is type(first) and synthetic.dtype == first.dtype
        assert synthetic.shape == first.shape and int(synthetic) == 0
        x, y, mask = next(iter(DataLoader(mixed, batch_size=len(mixed))))
        assert x.shape == (8, 3, 16, 16) and mask.tolist() == [False] * 4 + [True] * 4
        assert torch.as_tensor(y).reshape(-1).tolist() == [0, 1, 2, 0, 0, 0, 1, 2]


G = "generator"  # classes=: the labels are the generator's own class indices


class MeanLinear(torch.nn.Module):
    """A fixed linear teacher over a, b, c: ``logits = mean pixel in [0, 1] * w + b``."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor([-4.0, 0.0, 4.0]))
        self.b = torch.nn.Parameter(torch.tensor([2.0, 0.0, -2.0]))

    def forward(self, x):
        return x.float().mean((1, 2, 3))[:, None] * self.w + self.b


def _teacher(**kwargs):
    """A Teacher taking [0, 1] floats that keeps every candidate unless told otherwise."""
    return Teacher(MeanLinear(), expects="unit", **{"drop_hardest": 0.0, **kwargs})


# -- a teacher: checked on real items, filters the candidates; labels stay ints ----------------
def _real(n=6, value=None):
    """``n`` real items of labels 0, 1, 2, ...: images of their class's level (0, 128, 255),
    which a good teacher agrees with, or all ``value``."""
    from torch.utils.data import TensorDataset

    labels = torch.arange(n) % 3
    levels = torch.tensor([0, 128, 255], dtype=torch.uint8)[labels] if value is None else (
        torch.full((n,), value, dtype=torch.uint8))
    return TensorDataset(levels.view(n, 1, 1, 1).expand(n, 3, 16, 16).clone(), labels)


def test_mixed_appends_int_labels_and_checks_the_teacher_on_real_items(const_generator):
    from torch.utils.data import DataLoader

    teacher = _teacher()
    mixed = MixedDataset(const_generator, _real(), ratio=0.5, classes=G, teacher=teacher,
                         return_mask=True)
    assert teacher.real_rows == 6 and teacher.real_agreement == pytest.approx(4 / 6)
    assert len(mixed) == 9 and mixed.targets == [0, 1, 2] * 3
    x, y, mask = next(iter(DataLoader(mixed, batch_size=9)))
    assert y.dtype == torch.int64 and y.tolist() == mixed.targets
    assert mask.tolist() == [False] * 6 + [True] * 3
    assert x[6:, :, 0, 0].tolist() == [[0] * 3, [128] * 3, [255] * 3]
    assert mixed.synthetic.teacher is teacher
    assert mixed.synthetic.acceptance == {"a": 1.0, "b": 1.0, "c": 1.0}
    assert float(weighted_loss(torch.zeros(9, 3), y, mask)) == pytest.approx(math.log(3))


def test_mixed_refuses_a_chance_teacher_and_a_teacher_beside_a_synthetic_dataset(
        const_generator):
    with pytest.raises(GanaugConfigError, match=r"top class is the real label on only 33\.3% "
                                                r"of 6 real images"):
        MixedDataset(const_generator, _real(value=77), ratio=0.5, classes=G, teacher=_teacher())
    synth = SyntheticDataset(const_generator, 2)
    with pytest.raises(GanaugConfigError, match=r"teacher= goes to the SyntheticDataset when one "
                                                r"is given: SyntheticDataset\(\.\.\., "
                                                r"teacher=teacher\)"):
        MixedDataset(synth, _real(), classes=G, teacher=_teacher())
    filtered = SyntheticDataset(const_generator, 2, teacher=_teacher(min_confidence=0.8))
    mixed = MixedDataset(filtered, _real(), classes=G, return_mask=True)
    assert len(mixed) == 12 and mixed.targets[6:] == [0, 0, 1, 1, 2, 2]
    with pytest.raises(GanaugDataError, match=r"Class 'b': only 0 of 40"):
        mixed[8]  # the SyntheticDataset's own filter decides (p(b | b) = 1/3 < 0.8)
    img, label, synthetic = mixed[6]
    assert synthetic and int(label) == 0 and torch.equal(img, filtered.image(0))

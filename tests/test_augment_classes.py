"""Class identity by name (ganaug.augment.classes)."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch.utils.data import Subset

from ganaug import GanaugDataError
from ganaug.augment.classes import class_lookup, dataset_class_to_idx, lookup, to_class_to_idx

GEN = [f"c{i}" for i in (1, 10, 2, 3)]  # plain sort, as torchvision and ganaug write it


class Folder:
    def __init__(self, class_to_idx):
        self.class_to_idx = class_to_idx

    def __len__(self):
        return 1


class TimmLike:
    def __init__(self):  # timm's folder reader sorts naturally
        self.reader = SimpleNamespace(class_to_idx={"c1": 0, "c2": 1, "c3": 2, "c10": 3})


def test_natural_sort_maps_by_name_not_index():
    lut = class_lookup(GEN, dataset_class_to_idx(TimmLike()))
    assert lut.tolist() == [0, 2, 3, 1]
    assert lookup(lut, torch.tensor([3, 0, 1])).tolist() == [1, 0, 2]


def test_a_subset_of_the_classes_maps_to_their_own_indices():
    ds = Subset(Folder({"c3": 0, "c10": 1}), [0])
    assert class_lookup(GEN, dataset_class_to_idx(ds)).tolist() == [3, 1]


def test_unknown_names_are_refused_with_both_lists():
    with pytest.raises(GanaugDataError, match=r"does not know: truck\. The generator's classes "
                                              r"are: c1, c10, c2, c3 \(not in the dataset: c10"):
        class_lookup(GEN, {"c1": 0, "c2": 1, "c3": 2, "truck": 3})


def test_classes_list_and_explicit_arguments():
    assert to_class_to_idx(classes=["c2", "c1"]) == {"c2": 0, "c1": 1}
    assert dataset_class_to_idx(type("D", (), {"classes": ["a", "b"]})()) == {"a": 0, "b": 1}
    assert dataset_class_to_idx(object()) is None
    assert class_lookup(GEN, None) is None
    with pytest.raises(GanaugDataError, match="not both"):
        to_class_to_idx(classes=["a"], class_to_idx={"a": 0})
    with pytest.raises(GanaugDataError, match="list of class names"):
        to_class_to_idx(classes="abc")


def test_lookup_refuses_labels_without_a_class():
    lut = class_lookup(GEN, {"c3": 0, "c1": 2})
    with pytest.raises(GanaugDataError, match="Label 1 of the dataset names no class"):
        lookup(lut, torch.tensor([0, 1]))
    with pytest.raises(GanaugDataError, match="Label 7"):
        lookup(lut, torch.tensor(7))
    with pytest.raises(GanaugDataError, match="two classes one label"):
        class_lookup(GEN, {"c1": 0, "c2": 0})


def test_one_reader_for_every_entry_points_class_arguments(const_generator):
    from ganaug import GANAugment

    assert to_class_to_idx(classes=["b", "a"], names_arg="dataset_classes") == {"b": 0, "a": 1}
    with pytest.raises(GanaugDataError, match=r"class_to_idx= / dataset_classes= is empty"):
        GANAugment(const_generator, dataset_classes=[])  # was a bare ValueError from max()
    with pytest.raises(GanaugDataError, match=r"classes= names a more than once"):
        to_class_to_idx(classes=["a", "a"])


class Labelled:
    """A tiny map-style (image, label) dataset declaring ``class_to_idx``, like ImageFolder."""

    def __init__(self, class_to_idx, labels, target_transform=None):
        self.class_to_idx, self.targets = class_to_idx, list(labels)
        self.target_transform = target_transform

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        y = self.targets[i]
        return (torch.zeros(3, 16, 16, dtype=torch.uint8),
                y if self.target_transform is None else self.target_transform(y))


def test_a_concat_of_datasets_with_one_class_list_maps_by_its_names():
    # torch's ConcatDataset declares no names itself: its parts' were ignored, and the labels
    # were taken as the generator's indices
    from torch.utils.data import ConcatDataset

    names = {"c2": 0, "c1": 1}
    both = ConcatDataset([Labelled(names, [0, 1]), Subset(Labelled(names, [1, 0]), [0])])
    assert dataset_class_to_idx(both) == names


def test_a_concat_of_datasets_with_other_class_lists_is_refused_everywhere(const_generator):
    # part 0's label 0 is "a", part 1's label 0 is "b": labels were taken as the generator's
    # indices by with_labels, BatchMixer.for_loader and MixedDataset (a "b" image drawn as "a")
    from torch.utils.data import ConcatDataset, DataLoader

    import ganaug

    both = ConcatDataset([Labelled({"a": 0, "b": 1, "c": 2}, [0, 1, 2]),
                          Labelled({"b": 0, "c": 1}, [0, 1])])
    with pytest.raises(GanaugDataError, match=r"other class names.*\{'b': 0, 'c': 1\}"):
        dataset_class_to_idx(both)
    with pytest.raises(GanaugDataError, match="ConcatDataset"):
        ganaug.with_labels(both, ganaug.GANAugment(const_generator, p=1.0))
    with pytest.raises(GanaugDataError, match="ConcatDataset"):
        ganaug.BatchMixer.for_loader(const_generator, DataLoader(both), 0.5)
    with pytest.raises(GanaugDataError, match="ConcatDataset"):
        ganaug.MixedDataset(both, const_generator, ratio=0.5)
    # a part that declares no names beside one that does cannot be read either
    half = ConcatDataset([Labelled({"a": 0, "b": 1}, [0, 1]), torch.utils.data.TensorDataset(
        torch.zeros(1, 3, 4, 4), torch.tensor([0]))])
    with pytest.raises(GanaugDataError, match="declares no class names"):
        dataset_class_to_idx(half)


def test_a_target_transform_behind_the_declared_names_is_refused(const_generator):
    # ImageFolder's class_to_idx names the labels *before* its target_transform: a remapping
    # (here 2 - y) made every entry point draw the wrong class for each label
    from torch.utils.data import DataLoader

    import ganaug

    flipped = Labelled({"a": 0, "b": 1, "c": 2}, [0, 1, 2], target_transform=lambda y: 2 - y)
    for wrapped in (flipped, Subset(flipped, [0, 1])):
        with pytest.raises(GanaugDataError, match="target_transform.*class_to_idx="):
            ganaug.with_labels(wrapped, ganaug.GANAugment(const_generator, p=1.0))
        with pytest.raises(GanaugDataError, match="target_transform.*class_to_idx="):
            ganaug.BatchMixer.for_loader(const_generator, DataLoader(wrapped), 0.5)
        with pytest.raises(GanaugDataError, match=r"target_transform.*MixedDataset\(target_"):
            ganaug.MixedDataset(wrapped, const_generator, ratio=0.5)
    # naming the labels it returns is the user's word, and is taken
    ganaug.with_labels(flipped, ganaug.GANAugment(const_generator, p=1.0),
                       class_to_idx={"c": 0, "b": 1, "a": 2})
    ganaug.BatchMixer.for_loader(const_generator, DataLoader(flipped), 0.5,
                                 class_to_idx={"c": 0, "b": 1, "a": 2})


@pytest.mark.parametrize("keep", [lambda y: y, int, lambda y: np.int64(y),
                                  lambda y: torch.tensor(y)])
def test_a_target_transform_that_keeps_every_label_is_taken(const_generator, keep):
    # one that returns each declared label unchanged (int, NumPy or 0-d tensor) keeps the
    # names true; it was refused like a remapping by every entry point
    from torch.utils.data import DataLoader

    import ganaug

    same = Labelled({"a": 0, "b": 1, "c": 2}, [0, 1, 2, 2], target_transform=keep)
    for wrapped in (same, Subset(same, [0, 3])):
        ganaug.with_labels(wrapped, ganaug.GANAugment(const_generator, p=1.0))
        ganaug.BatchMixer.for_loader(const_generator, DataLoader(wrapped), 0.5)
    mixed = ganaug.MixedDataset(same, const_generator, ratio=0.5)
    assert mixed.class_counts("real") == {"a": 1, "b": 1, "c": 2}


@pytest.mark.parametrize("change", [lambda y: (y + 1) % 3, float, str, lambda y: torch.eye(3)[y],
                                    lambda y: y == 1, lambda y: 1 / 0])
def test_a_target_transform_that_changes_a_label_is_still_refused(const_generator, change):
    import ganaug

    changed = Labelled({"a": 0, "b": 1, "c": 2}, [0, 1, 2], target_transform=change)
    with pytest.raises(GanaugDataError, match=r"target_transform.*MixedDataset\(target_"):
        ganaug.MixedDataset(changed, const_generator, ratio=0.5)


def test_a_class_named_twice_is_refused_on_the_augment_side_too():
    class Twice:
        classes = ("a", "b", "a")

    with pytest.raises(GanaugDataError, match=r"Twice.classes names 'a' more than once"):
        dataset_class_to_idx(Twice())

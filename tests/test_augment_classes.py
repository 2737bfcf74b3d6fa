"""Class identity by name (ganaug.augment.classes)."""

from types import SimpleNamespace

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

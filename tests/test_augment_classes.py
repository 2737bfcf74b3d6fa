"""Class identity by name (ganaug.augment.classes)."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch.utils.data import Subset

from ganaug import GanaugDataError
from ganaug._classnames import dataset_class_to_idx
from ganaug.augment.classes import ClassMap, declared_class_to_idx, parse_classes
from ganaug.errors import GanaugConfigError

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
    cmap = ClassMap(GEN, declared_class_to_idx(TimmLike()), where="X")
    assert cmap.table == [0, 2, 3, 1] and cmap.label_names == ["c1", "c2", "c3", "c10"]
    assert cmap.to_generator(torch.tensor([3, 0, 1])).tolist() == [1, 0, 2]
    assert [cmap(y) for y in (3, 0, 1)] == [1, 0, 2]
    assert cmap(np.int64(3)) == cmap(torch.tensor(3)) == 1


def test_a_subset_of_the_classes_maps_to_their_own_indices():
    ds = Subset(Folder({"c3": 0, "c10": 1}), [0])
    cmap = ClassMap(GEN, declared_class_to_idx(ds), where="X")
    assert cmap.table == [3, 1] and cmap.num_labels == 2


def test_unknown_names_are_refused_with_both_lists():
    with pytest.raises(GanaugDataError, match=r"classes= has classes the generator does not "
                                              r"know: truck\. The generator's classes are: c1, "
                                              r"c10, c2, c3 \(not in classes=: c10\)"):
        ClassMap(GEN, {"c1": 0, "c2": 1, "c3": 2, "truck": 3}, where="X")
    cmap = ClassMap(GEN, where="X")
    with pytest.raises(GanaugDataError, match=r"the dataset \(Folder\) has classes the "
                                              r"generator does not know: a, b\. .*\(not in the "
                                              r"dataset \(Folder\): c1, c10, c2, c3\)"):
        cmap.bind({"a": 0, "b": 1}, "the dataset (Folder)")
    assert not cmap.bound  # the refused names were not kept


def test_classes_list_mapping_and_generator():
    assert parse_classes(["c2", "c1"]) == {"c2": 0, "c1": 1}
    assert parse_classes(("c2", "c1")) == {"c2": 0, "c1": 1}
    assert parse_classes({"c2": np.int64(3)}) == {"c2": 3}
    assert parse_classes("generator") == "generator" and parse_classes(None) is None
    assert dataset_class_to_idx(type("D", (), {"classes": ["a", "b"]})()) == {"a": 0, "b": 1}
    assert dataset_class_to_idx(object()) is None
    unbound = ClassMap(GEN, None, where="X")
    assert not unbound.bound and unbound.table is None and repr(unbound) == "ClassMap(X: unbound)"
    for bad in ("abc", "Generator", 3, ["a", 1], {"a", "b"}):
        with pytest.raises(GanaugConfigError, match=r"classes= must be the dataset's class names "
                                                    r"in label order .*or 'generator'"):
            parse_classes(bad)


def test_labels_without_a_class_are_refused():
    cmap = ClassMap(GEN, {"c3": 0, "c1": 2}, where="X")
    assert cmap.table == [3, -1, 0] and cmap.label_names == ["c3", "", "c1"]
    assert cmap.to_generator(torch.tensor([0, 2])).tolist() == [3, 0]
    with pytest.raises(GanaugDataError, match=r"X: label 1 names no class of classes= "
                                              r"\(\{'c3': 0, 'c1': 2\}\)"):
        cmap.to_generator(torch.tensor([0, 1]))
    with pytest.raises(GanaugDataError, match=r"X: label 7 names no class"):
        cmap.to_generator(torch.tensor([7]))
    with pytest.raises(GanaugDataError, match=r"X: label 1 names no class"):
        cmap(1)
    with pytest.raises(GanaugDataError, match=r"X: Label 7 is out of range.*names no class of "
                                              r"classes="):
        cmap(7)
    for bad in (True, 2.0):
        with pytest.raises(GanaugDataError, match=r"A label must be an int or a class name"):
            cmap(bad)


def test_a_0d_label_tensor_without_a_class_is_refused():
    cmap = ClassMap(GEN, {"c3": 0, "c1": 2}, where="X")
    with pytest.raises(GanaugDataError, match=r"label 7 names no class"):
        cmap.to_generator(torch.tensor(7))


def test_duplicate_and_bad_mappings_are_refused():
    with pytest.raises(GanaugDataError, match=r"classes= gives two classes one label: "
                                              r"\{'c1': 0, 'c2': 0\}"):
        ClassMap(GEN, {"c1": 0, "c2": 0}, where="X")
    with pytest.raises(GanaugDataError, match=r"classes= names c1 more than once"):
        parse_classes(["c1", "c2", "c1"])
    for bad in ({"a": 2**16}, {"a": -1}, {"a": 1.5}, {"a": True}, {1: 1}):
        with pytest.raises(GanaugDataError, match=r"classes= must map class names \(str\) to "
                                                  r"int labels in 0\.\.65535"):
            parse_classes(bad)
    for empty in ([], {}):
        with pytest.raises(GanaugDataError, match=r"classes= is empty"):
            parse_classes(empty)


def test_generator_order_maps_by_index():
    cmap = ClassMap(GEN, "generator", where="X")
    assert cmap.bound and cmap.by_index and cmap.table is None and cmap.num_labels == 4
    assert cmap.to_generator(torch.tensor([3, 0, 1])).tolist() == [3, 0, 1]
    assert cmap(1) == 1 and cmap.label_names == GEN
    with pytest.raises(GanaugDataError, match=r"label 4 names no class of the generator "
                                              r"\(labels 0\.\.3, classes='generator'\)"):
        cmap.to_generator(torch.tensor([0, 4]))


def test_an_unbound_map_refuses_int_labels_and_looks_names_up():
    cmap = ClassMap(GEN, where="X")
    with pytest.raises(GanaugConfigError, match=r"X got the int label 0 but does not know which "
                                                r"class each label is.*classes=dataset\.classes"
                                                r".*classes='generator'.*\(c1, c10, c2, c3\)"):
        cmap(0)
    with pytest.raises(GanaugConfigError, match=r"X does not know which class each label is"):
        cmap.to_generator(torch.tensor([0]))
    assert cmap("c2") == 2 and cmap.names_to_generator(["c10", "c3"], arg="a=") == {1, 3}
    with pytest.raises(GanaugDataError, match=r"X: Unknown class 'c4'"):
        cmap("c4")
    with pytest.raises(GanaugConfigError, match=r"only_classes takes class names, got 3: an "
                                                r"index could mean"):
        cmap.names_to_generator([3], arg="only_classes")


def test_a_second_different_binding_is_refused():
    cmap = ClassMap(GEN, where="GANAugment")
    cmap.bind({"c2": 0, "c1": 1}, "the dataset (A)")
    cmap.bind({"c2": 0, "c1": 1}, "the dataset (B)")  # the same names: taken
    assert cmap.what == "the dataset (A)" and cmap.table == [2, 0]
    with pytest.raises(GanaugDataError, match=r"GANAugment already maps labels by the classes "
                                              r"of the dataset \(A\) \(\{'c2': 0, 'c1': 1\}\); "
                                              r"other has other ones \(\{'c2': 1, 'c1': 0\}\)\. "
                                              r"Use one GANAugment per dataset"):
        cmap.bind({"c2": 1, "c1": 0}, "other")
    with pytest.raises(GanaugDataError, match=r"already maps labels.*other ones \(generator\)"):
        cmap.bind("generator", "other")
    by_index = ClassMap(GEN, "generator", where="X")
    by_index.bind("generator", "again")
    with pytest.raises(GanaugDataError, match=r"already maps labels by the classes of classes= "
                                              r"\(generator\)"):
        by_index.bind({"c1": 0}, "the dataset")
    assert cmap.table == [2, 0]  # unchanged by the refusals


def test_one_reader_for_every_entry_points_class_arguments(const_generator):
    from ganaug import GANAugment

    assert parse_classes(["b", "a"]) == {"b": 0, "a": 1}
    with pytest.raises(GanaugDataError, match=r"classes= is empty"):
        GANAugment(const_generator, classes=[])  # was a bare ValueError from max()
    with pytest.raises(GanaugDataError, match=r"classes= names a more than once"):
        GANAugment(const_generator, classes=["a", "a"])


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
        ganaug.MixedDataset(const_generator, both, ratio=0.5)
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
        with pytest.raises(GanaugDataError, match="passes its labels through the target_transform"):
            ganaug.with_labels(wrapped, ganaug.GANAugment(const_generator, p=1.0))
        with pytest.raises(GanaugDataError, match="passes its labels through the target_transform"):
            ganaug.BatchMixer.for_loader(const_generator, DataLoader(wrapped), 0.5)
        with pytest.raises(GanaugDataError, match=r"target_transform.*MixedDataset\(target_"):
            ganaug.MixedDataset(const_generator, wrapped, ratio=0.5)
    # naming the labels it returns is the user's word, and is taken
    named = ganaug.with_labels(flipped, ganaug.GANAugment(const_generator, p=1.0),
                               classes={"c": 0, "b": 1, "a": 2})
    img, label = named[0]  # label 2 - 0 = 2 is "a": the generator's class 0 (all pixels 0)
    assert label == 2 and int(img.max()) == 0
    assert int(named[2][0].min()) == 255  # label 0 is "c": class 2 (all pixels 255)
    mixer = ganaug.BatchMixer.for_loader(const_generator, DataLoader(flipped), 0.5,
                                         classes={"c": 0, "b": 1, "a": 2})
    assert mixer.class_map.table == [2, 1, 0]


def test_the_target_transform_refusal_names_the_parameter_that_exists(const_generator):
    import ganaug

    flipped = Labelled({"a": 0, "b": 1, "c": 2}, [0, 1, 2], target_transform=lambda y: 2 - y)
    with pytest.raises(GanaugDataError, match=r"target_transform") as err:
        ganaug.with_labels(flipped, ganaug.GANAugment(const_generator, p=1.0))
    assert "classes=" in str(err.value) and "class_to_idx=" not in str(err.value)


@pytest.mark.parametrize("keep", [lambda y: y, int, lambda y: np.int64(y),
                                  lambda y: torch.tensor(y)])
def test_a_target_transform_that_keeps_every_label_is_taken(const_generator, keep):
    # one that returns each declared label unchanged (int, NumPy or 0-d tensor) keeps the
    # names true; it was refused like a remapping by every entry point
    from torch.utils.data import DataLoader

    import ganaug

    same = Labelled({"a": 0, "b": 1, "c": 2}, [0, 1, 2, 2], target_transform=keep)
    for wrapped in (same, Subset(same, [0, 3])):
        ds = ganaug.with_labels(wrapped, ganaug.GANAugment(const_generator, p=1.0))
        img, label = ds[len(ds) - 1]  # label 2 is "c": the generator's class 2
        assert label == 2 and int(img.min()) == 255
        mixer = ganaug.BatchMixer.for_loader(const_generator, DataLoader(wrapped), 0.5)
        assert mixer.class_map.mapping == {"a": 0, "b": 1, "c": 2}
    mixed = ganaug.MixedDataset(const_generator, same, ratio=0.5)
    assert mixed.class_counts("real") == {"a": 1, "b": 1, "c": 2}


@pytest.mark.parametrize("change", [lambda y: (y + 1) % 3, float, str, lambda y: torch.eye(3)[y],
                                    lambda y: y == 1, lambda y: 1 / 0])
def test_a_target_transform_that_changes_a_label_is_still_refused(const_generator, change):
    import ganaug

    changed = Labelled({"a": 0, "b": 1, "c": 2}, [0, 1, 2], target_transform=change)
    with pytest.raises(GanaugDataError, match=r"target_transform.*MixedDataset\(target_"):
        ganaug.MixedDataset(const_generator, changed, ratio=0.5)


def test_a_class_named_twice_is_refused_on_the_augment_side_too():
    class Twice:
        classes = ("a", "b", "a")

    with pytest.raises(GanaugDataError, match=r"Twice.classes names 'a' more than once"):
        dataset_class_to_idx(Twice())

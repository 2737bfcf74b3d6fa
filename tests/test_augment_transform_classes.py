"""GANAugment/with_labels: class identity by name, value range, timm's create_loader.

The probe generator (``const_generator``/``ClassConstNet``) paints class k of K with the value
2k/(K-1) - 1, so the class of a replaced image is read back from its pixels.
"""

from __future__ import annotations

import PIL.Image
import pytest
import torch
from conftest import ClassConstNet
from torch.utils.data import DataLoader, Subset
from torchvision.datasets import ImageFolder
from torchvision.transforms import v2

from ganaug.augment import GANAugment, with_labels
from ganaug.errors import GanaugConfigError, GanaugDataError
from ganaug.generator import Generator

REAL = 60  # the real images' pixel value, unlike any probe class (0, 127/128, 255)


def _decode(img: torch.Tensor, num_classes: int = 3) -> int:
    """The probe class of a replaced image (uint8 or float in [0, 1])."""
    value = img.float().mean() / (255 if img.dtype == torch.uint8 else 1)
    return int(torch.round(value * (num_classes - 1)))


def _folder(root, names, per_class=2):
    for name in names:
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            PIL.Image.new("RGB", (16, 16), (REAL,) * 3).save(root / name / f"{i}.png")
    return root


def _probe(classes):
    return Generator(ClassConstNet(num_classes=len(classes)), classes=list(classes))


def _pipeline(gen, **kwargs):
    return v2.Compose([GANAugment(gen, p=1.0, seed=0, **kwargs), v2.PILToTensor()])


# -- class identity by name ------------------------------------------------------------------
def test_imagefolder_with_some_classes_maps_by_name(tmp_path, const_generator):
    folder = ImageFolder(_folder(tmp_path / "f", ["c", "a"]))  # labels: a -> 0, c -> 1
    ds = with_labels(folder, _pipeline(const_generator))
    got = {(label, _decode(img)) for img, label in ds}
    assert got == {(0, 0), (1, 2)}  # c is the generator's class 2, not its class 1 (b)


def test_subset_of_an_imagefolder_maps_by_name(tmp_path, const_generator):
    folder = ImageFolder(_folder(tmp_path / "f", ["b", "c"]))
    ds = with_labels(Subset(folder, [0, 3]), _pipeline(const_generator))
    assert [(label, _decode(img)) for img, label in ds] == [(0, 1), (1, 2)]


def test_unknown_folder_names_are_refused_listing_both(tmp_path, const_generator):
    folder = ImageFolder(_folder(tmp_path / "f", ["a", "zebra"]))
    with pytest.raises(GanaugDataError, match=r"does not know: zebra\. The generator's classes "
                                              r"are: a, b, c \(not in the dataset.*: b, c\)"):
        with_labels(folder, _pipeline(const_generator))


def test_explicit_classes_as_a_list_or_a_mapping(const_generator):
    img = PIL.Image.new("RGB", (8, 8), (REAL,) * 3)
    by_list = GANAugment(const_generator, p=1.0, classes=["c", "a"])
    by_dict = GANAugment(const_generator, p=1.0, classes={"c": 1, "b": 0})
    assert _decode(v2.functional.pil_to_tensor(by_list(img, 0)[0])) == 2
    assert _decode(v2.functional.pil_to_tensor(by_list(img, 1)[0])) == 0
    assert _decode(v2.functional.pil_to_tensor(by_dict(img, 0)[0])) == 1
    with pytest.raises(GanaugDataError, match=r"GANAugment: Label 2 is out of range"):
        by_list(img, 2)
    sparse = GANAugment(const_generator, p=1.0, classes={"c": 0, "a": 2})
    assert _decode(v2.functional.pil_to_tensor(sparse(img, 2)[0])) == 0
    assert _decode(v2.functional.pil_to_tensor(sparse(img, "b")[0])) == 1  # names: by name
    with pytest.raises(GanaugDataError, match=r"GANAugment: label 1 names no class of classes= "
                                              r"\(\{'c': 0, 'a': 2\}\)"):
        sparse(img, 1)


def test_with_labels_explicit_names_override_and_conflicts(tmp_path, const_generator):
    class Plain(torch.utils.data.Dataset):  # declares no names
        def __len__(self):
            return 1

        def __getitem__(self, i):
            return PIL.Image.new("RGB", (8, 8), (REAL,) * 3), 0

    ds = with_labels(Plain(), _pipeline(const_generator), classes=["c"])
    assert _decode(ds[0][0]) == 2
    by_index = with_labels(Plain(), _pipeline(const_generator), classes="generator")
    assert _decode(by_index[0][0]) == 0
    unknown = with_labels(Plain(), _pipeline(const_generator))  # never silently by index
    with pytest.raises(GanaugConfigError, match=r"GANAugment got the int label 0 but does not "
                                                r"know which class each label is.*classes="):
        unknown[0]
    aug = GANAugment(const_generator, p=1.0)
    with_labels(ImageFolder(_folder(tmp_path / "x", ["a", "c"])), aug)
    with pytest.raises(GanaugDataError, match="already maps labels.*Use one GANAugment per"):
        with_labels(ImageFolder(_folder(tmp_path / "y", ["b", "c"])), aug)


def test_no_names_refuses_int_labels_and_takes_class_names(const_generator):
    aug = GANAugment(const_generator, p=1.0, seed=0)
    img = torch.full((3, 4, 4), REAL, dtype=torch.uint8)
    for label in (0, 2, torch.tensor(1)):
        with pytest.raises(GanaugConfigError, match=r"GANAugment got the int label .* does not "
                                                    r"know which class each label is\. Pass the "
                                                    r"dataset's classes: classes=dataset\.classes.*"
                                                    r"classes='generator'.*\(a, b, c\)"):
            aug(img, label)
    out, label = aug(img, "c")  # a class name is looked up by name, unbound
    assert label == "c" and _decode(out) == 2
    assert _decode(aug({"image": img, "label": "b"})["image"]) == 1


def test_no_names_refuses_an_int_label_beyond_the_generators_classes(const_generator):
    aug = GANAugment(const_generator, p=1.0)
    with pytest.raises(GanaugConfigError, match=r"does not know which class each label is.*"
                                                r"classes="):
        aug(torch.zeros(3, 4, 4, dtype=torch.uint8), 3)


def test_classes_generator_maps_labels_by_index():
    gen = _probe(["c1", "c10", "c2"])
    img = torch.full((3, 8, 8), REAL, dtype=torch.uint8)
    by_index = GANAugment(gen, p=1.0, seed=0, classes="generator")
    assert [_decode(by_index(img, y)[0]) for y in range(3)] == [0, 1, 2]
    with pytest.raises(GanaugDataError, match=r"Label 3 is out of range.*classes='generator'"):
        by_index(img, 3)
    # a dataset that declares other names cannot re-bind it
    with pytest.raises(GanaugDataError, match=r"already maps labels by the classes of classes= "
                                              r"\(generator\).*Use one GANAugment per dataset"):
        with_labels(NaturalSorted(), by_index)


# -- timm --------------------------------------------------------------------------------------
def _timm_loader(ds, prefetcher):
    timm_data = pytest.importorskip("timm.data")
    return timm_data.create_loader(
        ds, input_size=(3, 16, 16), batch_size=3, is_training=True, use_prefetcher=prefetcher,
        color_jitter=0.0, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), num_workers=0,
        device=torch.device("cpu"), persistent_workers=False)


@pytest.mark.parametrize("prefetcher", [False, True], ids=["no-prefetcher", "prefetcher"])
def test_timm_create_loader_natural_sort(tmp_path, prefetcher):
    timm_data = pytest.importorskip("timm.data")
    gen = _probe(["c1", "c10", "c2"])  # ganaug and torchvision sort plainly
    ds = timm_data.create_dataset("", root=str(_folder(tmp_path / "f", ["c1", "c2", "c10"])))
    assert ds.reader.class_to_idx == {"c1": 0, "c2": 1, "c10": 2}  # timm sorts naturally
    wrapped = with_labels(ds, GANAugment(gen, p=1.0, seed=0))
    loader = _timm_loader(wrapped, prefetcher)
    assert wrapped.transform is not None  # timm assigned its transform ...
    seen = {}
    for images, labels in loader:
        assert images.dtype == torch.float32 and images.shape[1:] == (3, 16, 16)
        for img, label in zip(images, labels.tolist()):
            seen.setdefault(label, set()).add(_decode(img))  # ... after the GAN step
    names = ["c1", "c2", "c10"]
    assert seen == {label: {gen.classes.index(names[label])} for label in range(3)}


def test_settable_transform_runs_after_the_gan_step(const_generator):
    ds = with_labels([(PIL.Image.new("RGB", (8, 8), (REAL,) * 3), 2)],
                     GANAugment(const_generator, p=1.0), classes="generator")
    ds.transform = v2.PILToTensor()
    img, label = ds[0]
    assert label == 2 and img.dtype == torch.uint8 and _decode(img) == 2
    ds.label_transform = None  # the GAN step itself can still be replaced
    assert torch.all(ds[0][0] == REAL)


def test_with_labels_in_a_dataloader(tmp_path, const_generator):
    folder = ImageFolder(_folder(tmp_path / "f", ["c", "b"], per_class=3))
    ds = with_labels(folder, _pipeline(const_generator))
    images, labels = next(iter(DataLoader(ds, batch_size=6, num_workers=0)))
    assert [_decode(i) for i in images] == [1 if y == 0 else 2 for y in labels.tolist()]


# -- value range -----------------------------------------------------------------------------
@pytest.mark.parametrize("p", [0.0, 1.0])
def test_gan_augment_after_normalize_is_refused(const_generator, p):
    tf = v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True),
                     v2.Normalize([0.5] * 3, [0.25] * 3),
                     GANAugment(const_generator, p=p, classes="generator")])
    img = PIL.Image.new("RGB", (8, 8), (10, 200, 250))
    with pytest.raises(GanaugDataError, match=r"values in \[-1\.84, 1\.92\], not \[0, 1\].*"
                                              r"Put GANAugment before Normalize"):
        tf(img, 0)
    before = v2.Compose([GANAugment(const_generator, p=p, classes="generator"), v2.ToImage(),
                         v2.ToDtype(torch.float32, scale=True), v2.Normalize([0.5] * 3, [0.25] * 3)])
    assert before(img, 0)[0].shape == (3, 8, 8)


def test_float_images_in_unit_range_pass(const_generator):
    out, _ = GANAugment(const_generator, p=1.0, classes="generator")(torch.full((3, 4, 4), 1.0), 2)
    assert torch.allclose(out, torch.ones(3, 4, 4))
    with pytest.raises(GanaugDataError, match="not \\[0, 1\\]"):
        GANAugment(const_generator, p=0.0, classes="generator")(
            torch.full((3, 4, 4), float("nan")), 2)


@pytest.mark.parametrize("mapping", [{"a": 2**16}, {"a": -1}, {"a": 1.5}, {"a": "x"},
                                     {"a": True}, {0: 0}], ids=str)
def test_hostile_class_to_idx_is_refused(const_generator, mapping):
    with pytest.raises(GanaugDataError, match=r"classes= must map class names \(str\) to int "
                                              r"labels in 0\.\.65535"):
        GANAugment(const_generator, classes=mapping)

    class Declares(torch.utils.data.Dataset):
        class_to_idx = mapping

    with pytest.raises(GanaugDataError, match=r"Declares\.class_to_idx must map class names"):
        with_labels(Declares(), GANAugment(const_generator))
    for bad in ([1, 2], "ab", {"a", "b"}, ["a", 1]):
        with pytest.raises(GanaugConfigError, match=r"classes= must be the dataset's class names "
                                                    r"in label order"):
            GANAugment(const_generator, classes=bad)
    with pytest.raises(GanaugDataError, match=r"classes= names a more than once"):
        GANAugment(const_generator, classes=["a", "b", "a"])


def test_timm_example_runs(tmp_path):
    pytest.importorskip("timm")
    import os
    import subprocess
    import sys
    from pathlib import Path

    example = Path(__file__).resolve().parents[1] / "examples" / "timm_create_loader.py"
    root = str(example.parents[1])  # this checkout's ganaug, not an installed one
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": str(tmp_path),
           "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    out = subprocess.run([sys.executable, str(example), "--prefetcher"], capture_output=True,
                         text=True, env=env, timeout=120, check=True).stdout
    assert "timm labels: {'c1': 0, 'c2': 1, 'c10': 2}; generator classes: ['c1', 'c10', 'c2']" in out
    assert "GAN step: GANAugment(p=0.3" in out and "then timm's transform: Compose" in out
    assert "batch 1: x (6, 3, 32, 32) torch.float32" in out


@pytest.mark.parametrize("classes", ["a", 1, "Generator"], ids=["str", "int", "capitalised"])
def test_classes_must_be_a_list_a_mapping_or_generator(const_generator, classes):
    with pytest.raises(GanaugConfigError, match=r"classes= must be the dataset's class names .*"
                                                rf"or 'generator'.*got {classes!r}"):
        GANAugment(const_generator, classes=classes)



@pytest.mark.parametrize("only", [[3], [0], ["a", 2], "a", 1],
    ids=["int3", "int0", "mixed", "str", "bare-int"])
def test_only_classes_takes_names_only(const_generator, only):
    with pytest.raises(GanaugConfigError, match=r"only_classes (takes class names, got \d|must "
                                                r"be a list of class names)"):
        GANAugment(const_generator, classes="generator", only_classes=only)


class NaturalSorted(torch.utils.data.Dataset):
    """timm's reader order (c1, c2, c10) against the generator's plain sort (c1, c10, c2)."""

    class_to_idx = {"c1": 0, "c2": 1, "c10": 2}  # noqa: RUF012
    targets = [0, 1, 2]  # noqa: RUF012

    def __len__(self):
        return 3

    def __getitem__(self, i):
        return torch.full((3, 8, 8), REAL, dtype=torch.uint8), i


def test_natural_order_maps_by_name_with_classes_and_is_refused_without():
    # timm's reader sorts c1, c2, c10; the generator c1, c10, c2: label 2 is c10, generator 2 c2
    gen = _probe(["c1", "c10", "c2"])
    img = torch.full((3, 8, 8), REAL, dtype=torch.uint8)
    names = NaturalSorted.class_to_idx
    for classes in (names, ["c1", "c2", "c10"]):
        aug = GANAugment(gen, p=1.0, seed=0, classes=classes)
        assert [_decode(aug(img, y)[0]) for y in range(3)] == [0, 2, 1]
    declared = with_labels(NaturalSorted(), GANAugment(gen, p=1.0, seed=0))
    assert [_decode(declared[i][0]) for i in range(3)] == [0, 2, 1]
    with pytest.raises(GanaugConfigError, match=r"int label 2 but does not know which class "
                                                r"each label is.*\(c1, c10, c2\)"):
        GANAugment(gen, p=1.0)(img, 2)


def test_only_classes_names_the_rare_class_whatever_the_order():
    # classes=[2] meant "the rare dataset label 2" (c10) but picked the generator's class 2 (c2):
    # label 1's images were replaced and label 2's never were, silently. Ints are now refused.
    import ganaug.albumentations as GA

    gen = _probe(["c1", "c10", "c2"])
    match = r"only_classes takes class names, got 2: an index could mean.*only_classes=\['c1'\]"
    with pytest.raises(GanaugConfigError, match=match):
        GANAugment(gen, p=1.0, only_classes=[2])
    with pytest.raises(GanaugConfigError, match=match):
        GANAugment(gen, p=1.0, only_classes=[2], classes=NaturalSorted.class_to_idx)
    with pytest.raises(GanaugConfigError, match=match):
        GA.GANAugment(gen, p=1.0, only_classes=[2], classes=NaturalSorted.class_to_idx)
    ds = with_labels(NaturalSorted(), GANAugment(gen, p=1.0, only_classes=["c10"], seed=0))
    assert ds[0][0].float().mean() == REAL and ds[1][0].float().mean() == REAL
    assert _decode(ds[2][0]) == 1  # label 2 (c10) got the generator's c10

"""SyntheticDataset: determinism, the export-layout cache folder, the classifier filter."""

from __future__ import annotations

import csv

import PIL.Image
import pytest
import torch
from torch import nn
from torchvision.transforms import v2

from ganaug.augment import SyntheticDataset, Teacher
from ganaug.errors import GanaugConfigError, GanaugDataError


# -- SyntheticDataset ------------------------------------------------------------------------
def test_synthetic_layout_and_items(tiny_generator, monkeypatch):
    monkeypatch.setattr(SyntheticDataset, "chunk_size", 2)
    ds = SyntheticDataset(tiny_generator, counts={"a": 5, "c": 3}, seed=1)
    assert len(ds) == 8 and ds.targets == [0] * 5 + [2] * 3 and ds.counts == [5, 0, 3]
    assert ds.classes == ["a", "b", "c"] and ds.class_to_idx["c"] == 2
    img, label = ds[6]
    assert isinstance(img, PIL.Image.Image) and img.size == (16, 16) and label == 2
    assert ds.locate(6) == (2, 1) and ds.index_of(2, 1) == 6
    with pytest.raises(IndexError):
        ds[8]


def test_a_huge_synthetic_dataset_is_lazy_and_refuses_to_materialise(tiny_generator, tmp_path,
                                                                     monkeypatch):
    """counts=10**15 used to hang building a list of every label; the dataset is lazy, so
    it is made at once, and generate() refuses what cannot fit in memory or on the disk."""

    n = 10**15
    ds = SyntheticDataset(tiny_generator, n)
    assert len(ds) == len(ds.targets) == 3 * n
    assert (ds.targets[0], ds.targets[n], ds.targets[-1]) == (0, 1, 2)
    assert ds.targets[n - 1:n + 2] == [0, 1, 1] and ds.locate(2 * n + 5) == (2, 5)
    with pytest.raises(IndexError):
        ds.targets[3 * n]
    monkeypatch.setattr("ganaug._imaging.available_memory", lambda: 2**30)
    with pytest.raises(GanaugConfigError, match=r"3,000,000,000,000,000 images of 3x16x16 .* "
                                                r"memory.*cache="):
        ds.generate()
    cached = SyntheticDataset(tiny_generator, n, cache=tmp_path / "c")
    with pytest.raises(GanaugConfigError, match=r"needs at least .* free"):
        cached.generate()
    small = SyntheticDataset(tiny_generator, [2, 0, 1])
    assert small.targets == [0, 0, 2] and list(small.targets) == [0, 0, 2]
    assert small.targets != [0, 0, 1] and small.targets[::2] == [0, 2]


def test_a_memory_cache_that_cannot_keep_every_image_is_refused_up_front(tiny_generator,
                                                                        monkeypatch):
    # cache="memory" keeps every chunk read, with no bound: a shuffled epoch grew the process
    # until it ran out of memory; it is now refused like generate() (768 B per 3x16x16 image)
    monkeypatch.setattr("ganaug._imaging.available_memory", lambda: 2**20)
    with pytest.raises(GanaugConfigError, match=r"cache='memory' would keep 3,000 images of "
                                                r"3x16x16 \(2\.3 MB\) in memory, but 1\.0 MB.*"
                                                r"cache=None.*memory_mb.*cache=DIR.*1,365"):
        SyntheticDataset(tiny_generator, 1000, cache="memory")
    SyntheticDataset(tiny_generator, 1000)  # bounded by memory_mb: taken
    SyntheticDataset(tiny_generator, 400, cache="memory")  # fits


def test_synthetic_items_do_not_depend_on_access_order(tiny_generator, monkeypatch):
    monkeypatch.setattr(SyntheticDataset, "chunk_size", 2)
    fwd = SyntheticDataset(tiny_generator, 5, seed=3)
    rev = SyntheticDataset(tiny_generator, 5, seed=3)
    a = [fwd.image(i) for i in range(15)]
    b = [rev.image(i) for i in reversed(range(15))][::-1]
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y)
    assert len({t.numpy().tobytes() for t in a}) == 15
    other = SyntheticDataset(tiny_generator, 5, seed=4)
    assert not torch.equal(other.image(0), a[0])


def test_synthetic_one_call_per_chunk_and_generate(tiny_generator, monkeypatch):
    calls = []
    original = tiny_generator.generate
    monkeypatch.setattr(tiny_generator, "generate",
                        lambda z, y, **k: calls.append(len(y)) or original(z, y, **k))
    monkeypatch.setattr(SyntheticDataset, "chunk_size", 4)
    ds = SyntheticDataset(tiny_generator, 5)
    ds.generate()
    assert sorted(calls) == [1, 1, 1, 4, 4, 4] and ds.cache == "memory"
    _ = [ds[i] for i in range(15)]
    assert len(calls) == 6


def test_default_cache_generates_each_chunk_once_when_shuffled(tiny_generator, monkeypatch):
    calls = []
    original = tiny_generator.generate
    monkeypatch.setattr(tiny_generator, "generate",
                        lambda z, y, **k: calls.append(len(y)) or original(z, y, **k))
    monkeypatch.setattr(SyntheticDataset, "chunk_size", 2)
    ds = SyntheticDataset(tiny_generator, 20)  # 30 chunks
    order = torch.randperm(60, generator=torch.Generator().manual_seed(0)).tolist()
    first = {i: ds.image(i).clone() for i in order}
    assert len(calls) == 30 and ds.cache is None  # was: an LRU of 8 chunks, 54 calls
    assert all(torch.equal(ds.image(i), first[i]) for i in reversed(order))
    assert len(calls) == 30


def test_memory_budget_bounds_the_default_cache(tiny_generator, monkeypatch):
    monkeypatch.setattr(SyntheticDataset, "chunk_size", 2)
    chunk_bytes = 2 * 3 * 16 * 16  # chunk_size x C x H x W uint8
    ds = SyntheticDataset(tiny_generator, 20)
    ds.memory_mb = 3.5 * chunk_bytes / 2**20  # settable on the instance
    full = SyntheticDataset(tiny_generator, 20, cache="memory")
    for i in torch.randperm(60, generator=torch.Generator().manual_seed(1)).tolist():
        assert torch.equal(ds.image(i), full.image(i))
        assert len(ds._chunks) <= 3 and ds._held <= 3 * chunk_bytes
    assert len(full._chunks) == 30
    assert SyntheticDataset.memory_mb == 256  # the instance's budget left the class's alone


def test_synthetic_transform_and_target_transform(tiny_generator):
    ds = SyntheticDataset(tiny_generator, 2, transform=v2.PILToTensor(),
                          target_transform=lambda y: y + 10)
    img, label = ds[3]
    assert img.shape == (3, 16, 16) and label == 11
    torch.testing.assert_close(img, ds.image(3))


def test_synthetic_cache_dir_round_trip(tiny_generator, tmp_path, monkeypatch):
    cache = tmp_path / "synth"
    monkeypatch.setattr(SyntheticDataset, "chunk_size", 2)
    first = SyntheticDataset(tiny_generator, 3, cache=cache).generate()
    assert sorted(p.name for p in (cache / "b").iterdir()) == ["000000.png", "000001.png", "000002.png"]
    with open(cache / "manifest.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 9
    assert rows[4] == {"path": "b/000001.png", "class": "b", "label": "1", "seed": "0", "index": "1"}
    monkeypatch.setattr(tiny_generator, "generate", lambda *a, **k: pytest.fail("regenerated"))
    again = SyntheticDataset(tiny_generator, 3, cache=cache)
    for i in range(9):
        torch.testing.assert_close(again.image(i), first.image(i))
    from torchvision.datasets import ImageFolder

    folder = ImageFolder(str(cache))
    assert folder.classes == ["a", "b", "c"] and len(folder) == 9


def test_synthetic_reads_and_matches_ganaug_export(tiny_generator, tmp_path, monkeypatch):
    from ganaug.export import export_image_folder

    export_image_folder(tiny_generator, tmp_path / "exp", n_per_class=4, seed=3, progress=False)
    monkeypatch.setattr(SyntheticDataset, "chunk_size", 3)
    fresh = SyntheticDataset(tiny_generator, 4, seed=3)
    expected = [fresh.image(i).clone() for i in range(12)]
    monkeypatch.setattr(SyntheticDataset, "chunk_size", 256)  # the cache: another chunk size
    monkeypatch.setattr(tiny_generator, "generate", lambda *a, **k: pytest.fail("regenerated"))
    cached = SyntheticDataset(tiny_generator, counts=[4, 2, 1], seed=3, cache=tmp_path / "exp")
    for c, j in [(0, 0), (0, 3), (1, 1), (2, 0)]:
        torch.testing.assert_close(cached.image(cached.index_of(c, j)), expected[4 * c + j])


def test_synthetic_cache_dir_refuses_foreign_folder(tiny_generator, tmp_path):
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("x")
    with pytest.raises(GanaugConfigError, match=r"exists and is not an empty folder or a ganaug "
                                                r"export \(no export\.json\)"):
        SyntheticDataset(tiny_generator, 2, cache=tmp_path / "other")


def test_synthetic_cache_dir_other_settings(tiny_generator, tmp_path):
    SyntheticDataset(tiny_generator, 2, cache=tmp_path / "s", seed=0)
    with pytest.raises(GanaugConfigError, match=r"already holds a ganaug export made with other "
                                                r"arguments \(seed: 0 there, 1 now\)\. Use a new "
                                                r"cache folder"):
        SyntheticDataset(tiny_generator, 2, cache=tmp_path / "s", seed=1)


@pytest.mark.parametrize("kwargs,match", [
    ({"counts": {"dog": 3}}, r"Unknown class 'dog' in counts"),
    ({"counts": [1, 2]}, r"2 entries for 3 classes"),
    ({"counts": -1}, r"counts must be an integer >= 0, got -1"),
    ({"counts": [1, -1, 0]}, r"each entry of counts must be an integer >= 0, got -1"),
    ({"counts": 1, "seed": -1}, r"seed must be an integer from 0 to .*, got -1"),
    ({"counts": 1, "truncation": 1.5}, r"truncation must be a finite number in \(0, 1\]"),
    ({"counts": 1, "classes": 3}, r"classes= must be the dataset's class names in label order"),
])
def test_synthetic_config_errors(tiny_generator, kwargs, match):
    with pytest.raises(GanaugConfigError, match=match):
        SyntheticDataset(tiny_generator, **kwargs)


def test_the_teacher_must_be_a_teacher_over_the_label_classes(tiny_generator):
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 3))
    with pytest.raises(GanaugConfigError, match=r"SyntheticDataset\(teacher=\.\.\.\) takes a "
                                                r"ganaug\.Teacher, got Sequential; wrap the "
                                                r"classifier: teacher=ganaug\.Teacher\(model"):
        SyntheticDataset(tiny_generator, 1, teacher=model)
    with pytest.raises(GanaugConfigError, match=r"The Teacher was made for 5 classes but the "
                                                r"labels have 3"):
        SyntheticDataset(tiny_generator, 1, teacher=Teacher(model, num_classes=5, expects="unit"))
    with pytest.raises(GanaugConfigError, match=r"min_confidence must be a finite number in "
                                                r"\[0, 1\]"):
        Teacher(model, expects="unit", min_confidence=2)
    # two names: the teacher's columns are those two classes' labels
    with pytest.raises(GanaugConfigError, match=r"made for 3 classes but the labels have 2"):
        SyntheticDataset(tiny_generator, 1, classes=["c", "a"],
                         teacher=Teacher(model, num_classes=3, expects="unit"))
    teacher = Teacher(model, expects="unit")
    assert SyntheticDataset(tiny_generator, 1, teacher=teacher).teacher is teacher
    assert teacher.num_classes == 3  # taken from the labels


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


def filter_teacher(model, min_confidence=0.9):
    """The old ``filter=model`` (min_confidence 0.9, nothing dropped by rank)."""
    return Teacher(model, expects="unit", drop_hardest=0.0, min_confidence=min_confidence)


def test_filter_acceptance_accounting(tiny_generator, monkeypatch):
    monkeypatch.setattr(SyntheticDataset, "chunk_size", 6)
    clf = EveryOther(cls=1)
    ds = SyntheticDataset(tiny_generator, {"b": 6}, teacher=filter_teacher(clf), seed=0)
    unfiltered = SyntheticDataset(tiny_generator, {"b": 6}, seed=0)
    images = torch.stack([ds.image(i) for i in range(6)])
    assert clf.seen == 12 and ds.acceptance == {"b": 0.5}
    assert ds.acceptance["b"] == clf.kept / clf.seen
    # the kept images are candidates at even positions, so some differ from the unfiltered set
    assert not torch.equal(images, torch.stack([unfiltered.image(i) for i in range(6)]))
    assert len({t.numpy().tobytes() for t in images}) == 6
    assert ds.targets == [1] * 6 and ds[0][1] == 1  # the intended hard label, not soft


def test_drop_hardest_draws_enough_candidates_and_drops_the_worst(const_generator, monkeypatch):
    monkeypatch.setattr(SyntheticDataset, "chunk_size", 9)
    seen = []

    def ranked(images):  # candidate i of a batch: logit i on its class, so the first are worst
        seen.append(len(images))
        logits = torch.zeros(len(images), 3)
        logits[:, 2] = torch.arange(len(images), dtype=torch.float32)
        return logits

    ds = SyntheticDataset(const_generator, {"c": 9},
                          teacher=Teacher(ranked, expects="unit", drop_hardest=0.1))
    assert ds.image(8).shape == (3, 16, 16)
    assert seen == [10]  # ceil(9 / 0.9) candidates, the hardest one dropped
    assert ds.acceptance == {"c": 0.9}


def test_filter_unreachable_acceptance(tiny_generator):
    never = EveryOther(cls=0)  # confident in class a only, so class b is never accepted
    ds = SyntheticDataset(tiny_generator, {"b": 4}, teacher=filter_teacher(never))
    ds.max_tries = 10
    with pytest.raises(GanaugDataError,
                       match=r"Class 'b': only 0 of 10 .*0\.0%.*min_confidence=0\.9.*train the generator longer"):
        ds[0]


def test_synthetic_with_a_path_pickles_small_and_matches(tiny_model_path, tiny_generator):
    import pickle

    ds = SyntheticDataset(tiny_model_path, 2, seed=1)
    assert ds.classes == ["a", "b", "c"] and not ds.source.loaded  # header only
    expected = SyntheticDataset(tiny_generator, 2, seed=1).image(3)
    torch.testing.assert_close(ds.image(3), expected)
    weights = sum(v.numel() * 4 for v in tiny_generator.state_dict().values())
    restored = pickle.loads(pickle.dumps(ds))
    assert len(pickle.dumps(ds)) < weights / 4 and not restored.source.loaded
    torch.testing.assert_close(restored.image(3), expected)


def test_synthetic_filtered_cache_refuses_other_settings(tiny_generator, tmp_path):
    clf = EveryOther(cls=1)
    first = SyntheticDataset(tiny_generator, {"b": 2}, teacher=filter_teacher(clf),
                             cache=tmp_path / "f")
    first.generate()
    assert (tmp_path / "f" / "ganaug-synthetic.json").is_file()
    assert sorted(p.name for p in (tmp_path / "f" / "b").iterdir()) == ["000000.png", "000001.png"]
    with pytest.raises(GanaugConfigError, match=r"already holds filtered synthetic images made "
                                                r"with other arguments \(min_confidence: 0\.9 "
                                                r"there, 0\.5 now\)"):
        SyntheticDataset(tiny_generator, {"b": 2}, teacher=filter_teacher(clf, 0.5),
                         cache=tmp_path / "f")


# -- labels of a real dataset (class identity by name) ---------------------------------------
def test_items_carry_a_datasets_labels_by_name():
    from conftest import ClassConstNet

    from ganaug.generator import Generator

    natural = {"c1": 0, "c2": 1, "c10": 2}  # timm's reader; the generator is plain: c1, c10, c2
    gen = Generator(ClassConstNet(num_classes=3), classes=sorted(natural))
    ds = SyntheticDataset(gen, 2, classes=natural)
    assert ds.classes == ["c1", "c2", "c10"] and ds.generator_classes == ["c1", "c10", "c2"]
    for i in range(len(ds)):
        img, label = ds[i]
        value = float(v2.functional.pil_to_tensor(img).float().mean()) / 255
        assert ds.generator_classes[round(value * 2)] == ds.classes[label] == [
            "c1", "c10", "c2"][ds.locate(i)[0]]
    assert sorted(ds.targets) == [0, 0, 1, 1, 2, 2]
    # the same names as a list in label order, and the generator's own order by index
    assert list(SyntheticDataset(gen, 2, classes=["c1", "c2", "c10"]).targets) == list(ds.targets)
    own = SyntheticDataset(gen, 2, classes="generator")
    assert own.classes == ["c1", "c10", "c2"] and list(own.targets) == [0, 0, 1, 1, 2, 2]


def test_a_subset_of_classes_and_the_filter_columns(const_generator):
    ds = SyntheticDataset(const_generator, 3, classes=["c", "a"])
    assert ds.counts == [3, 0, 3] and ds.targets == [1, 1, 1, 0, 0, 0]
    with pytest.raises(GanaugConfigError, match=r"counts asks for class\(es\) b, which "
                                                r"classes= does not name \(c, a\)"):
        SyntheticDataset(const_generator, counts={"b": 1}, classes=["c", "a"])
    with pytest.raises(GanaugDataError, match=r"does not know: zebra"):
        SyntheticDataset(const_generator, 1, classes=["a", "zebra"])
    seen = []

    def by_label(images):  # confident in column 0 only, the label of "c"
        seen.append(len(images))
        return torch.tensor([[9.0, 0.0]]).repeat(len(images), 1)

    kept = SyntheticDataset(const_generator, {"c": 2}, classes=["c", "a"],
                            teacher=filter_teacher(by_label))
    assert kept.targets == [0, 0] and kept.image(1).shape == (3, 16, 16) and seen == [2]


def test_progress_must_be_a_bool(const_generator, capsys):
    ds = SyntheticDataset(const_generator, 2)
    with pytest.raises(GanaugConfigError, match=r"progress must be True or False, got 'no'"):
        ds.generate(progress="no")
    assert ds.cache is None  # refused before anything was generated
    assert ds.generate(progress=True) is ds and ds.cache == "memory"
    assert "synthetic chunks" in capsys.readouterr().err


@pytest.mark.parametrize("n,match", [
    (2.0, r"counts must be an integer >= 0, got 2\.0"),  # TypeError: not iterable
    (True, r"counts must be an integer >= 0, got True"),
])
def test_a_non_integer_count_is_refused(const_generator, n, match):
    with pytest.raises(GanaugConfigError, match=match):
        SyntheticDataset(const_generator, n)


def test_counts_given_as_a_string_is_refused_whole(const_generator):
    # "abc" was read as three counts 'a', 'b', 'c'
    with pytest.raises(GanaugConfigError, match=r"counts must be an integer >= 0, got 'abc'"):
        SyntheticDataset(const_generator, counts="abc")


def test_indices_are_integers_in_range(const_generator):
    ds = SyntheticDataset(const_generator, 2)
    # a 0-d tensor index (a sampler's torch.randperm) used to reach batch_size=tensor(2)
    assert ds[torch.tensor(3)][1] == ds[3][1] == 1
    assert ds[-6][1] == 0
    with pytest.raises(IndexError, match=r"index -7 is out of range for 6 synthetic images"):
        ds[-7]
    for bad in (1.5, 2.0, "1", None, slice(0, 2)):
        with pytest.raises(TypeError, match=r"indices must be integers, got"):
            ds[bad]
    # index_of(-1, 0) returned 6 (= len) through counts[-1]; class 5 raised a bare IndexError
    for cls, j in ((-1, 0), (5, 0)):
        with pytest.raises(IndexError, match=rf"class {cls} is not one of 0\.\.2"):
            ds.index_of(cls, j)
    with pytest.raises(IndexError, match=r"class 0 has 2 images, asked for -1"):
        ds.index_of(0, -1)
    assert ds.index_of(2, 1) == 5


@pytest.mark.parametrize("cache,mean", [("Memory", "the mode 'memory'"),
                                        (" memory", "the mode 'memory'"),
                                        ("memroy", "the mode 'memory'"),
                                        ("None", "None"), ("", "None")])
def test_a_misspelt_cache_mode_is_refused_without_creating_a_folder(tiny_generator, tmp_path,
                                                                    monkeypatch, cache, mean):
    # cache="Memory" silently made a folder ./Memory and filled it with PNGs
    monkeypatch.chdir(tmp_path)
    with pytest.raises(GanaugConfigError, match=rf"cache={cache!r} is not a mode \('memory'\) "
                                                rf"and would create a folder.*Did you mean "
                                                rf"{mean}\?.*cache='\./"):
        SyntheticDataset(tiny_generator, 2, cache=cache)
    assert list(tmp_path.iterdir()) == []


def test_cache_folders_that_look_like_modes_are_still_folders(tiny_generator, tmp_path,
                                                              monkeypatch):
    from pathlib import Path

    from ganaug.errors import GanaugTypeError

    monkeypatch.chdir(tmp_path)
    for cache in (Path("Memory"), "./None", "synth"):  # a Path, a path with a separator, a word
        ds = SyntheticDataset(tiny_generator, 1, cache=cache).generate()
        assert ds.cache_dir == Path(cache) and (tmp_path / Path(cache).name / "a").is_dir()
    assert SyntheticDataset(tiny_generator, 1, cache="Memory").cache_dir == \
        Path("Memory")  # the folder exists now: it is used
    with pytest.raises(GanaugTypeError, match=r"cache must be None, 'memory' or a folder path, "
                                              r"got True \(bool\)"):
        SyntheticDataset(tiny_generator, 1, cache=True)


def test_classes_with_labels_that_are_not_consecutive_are_refused(tiny_generator):
    with pytest.raises(GanaugDataError, match=r"classes= must use the labels 0\.\.1, got "
                                              r"\{'a': 0, 'c': 2\}"):
        SyntheticDataset(tiny_generator, 2, classes={"a": 0, "c": 2})

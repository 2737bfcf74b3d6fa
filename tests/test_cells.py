"""ganaug.evaluation.cells: the experiment's cell cache on damaged, copied or stale cell files."""

from __future__ import annotations

import json
import math

import pytest
import torch

from ganaug.data import LabeledImages
from ganaug.errors import GanaugDataError
from ganaug.evaluation.cells import CellCache

KEY = {"data": "digits", "classifier_steps": 3}


def _data(seed: int, n: int = 6, classes=("a", "b", "c")) -> LabeledImages:
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 1, 4, 4), dtype=torch.uint8, generator=g)
    return LabeledImages(images, torch.arange(n) % len(classes), list(classes), "test", "")


SUBSET, TEST = _data(0), _data(1)


def _result(n_classes: int = 3) -> dict:
    return {"accuracy": 0.5, "balanced_accuracy": 0.5, "per_class_accuracy": [0.5] * n_classes,
            "confusion": [[1] * n_classes] * n_classes, "train_data": "6 real", "wall_s": 1.0}


@pytest.fixture
def cache(tmp_path):
    cache = CellCache(tmp_path / "cells", KEY, test=TEST)
    cache.put(cache.cell("10", 0, "real", SUBSET, _result()))
    cache.put(cache.cell("10", 0, "real+aug", SUBSET, _result()))
    return cache


def test_a_cell_is_reused_with_the_same_settings_and_data(cache):
    cell = cache.get("10", 0, "real", SUBSET)
    assert cell is not None and cell["arm"] == "real" and cell["accuracy"] == 0.5


def test_a_cell_of_other_training_or_test_images_is_recomputed(cache, tmp_path):
    """A folder: data spec names the same path after its images changed: same settings, other
    images; the cell must not be reused."""
    assert cache.get("10", 0, "real", _data(5)) is None
    other_test = CellCache(tmp_path / "cells", KEY, test=_data(6))
    assert other_test.get("10", 0, "real", SUBSET) is None


@pytest.mark.parametrize("text", ['{"regime": "10", "se', "", "\x00\xff garbage", "[1, 2]",
                                  "null", '"cell"'])
def test_a_damaged_cell_file_is_refused_by_name(cache, text):
    path = cache.folder / "10-s0-real.json"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(GanaugDataError, match=r"10-s0-real\.json.*damaged.*[Dd]elete it"):
        cache.get("10", 0, "real", SUBSET)


def test_a_cell_file_copied_under_another_name_is_refused(cache):
    """real and real+aug have the same settings key: a copy of one under the other's name
    (or another seed's) would be reported as that arm."""
    folder = cache.folder
    (folder / "10-s0-real_aug.json").write_bytes((folder / "10-s0-real.json").read_bytes())
    with pytest.raises(GanaugDataError, match=r"holds the cell of regime 10, seed 0, arm real"
                                              r".*not.*arm real\+aug"):
        cache.get("10", 0, "real+aug", SUBSET)
    (folder / "10-s1-real.json").write_bytes((folder / "10-s0-real.json").read_bytes())
    with pytest.raises(GanaugDataError, match=r"seed 0.*not.*seed 1"):
        cache.get("10", 1, "real", SUBSET)


@pytest.mark.parametrize("field, value", [
    ("accuracy", None), ("accuracy", "0.9"), ("accuracy", 1.5), ("accuracy", math.nan),
    ("accuracy", True), ("balanced_accuracy", -0.1), ("per_class_accuracy", [0.5, 0.5]),
    ("per_class_accuracy", "abc"), ("per_class_accuracy", [0.5, 0.5, 7]), ("wall_s", "x"),
    ("n_real", -1), ("train_data", 3)])
def test_a_cell_with_broken_results_is_refused(cache, field, value):
    path = cache.folder / "10-s0-real.json"
    cell = json.loads(path.read_text())
    cell[field] = value
    path.write_text(json.dumps(cell))
    with pytest.raises(GanaugDataError, match=rf"10-s0-real\.json.*{field}.*[Dd]elete it"):
        cache.get("10", 0, "real", SUBSET)


def test_a_cell_without_a_field_is_refused(cache):
    path = cache.folder / "10-s0-real.json"
    cell = json.loads(path.read_text())
    del cell["accuracy"]
    path.write_text(json.dumps(cell))
    with pytest.raises(GanaugDataError, match=r"accuracy"):
        cache.get("10", 0, "real", SUBSET)


def test_a_cell_of_other_settings_is_still_recomputed(cache):
    other = CellCache(cache.folder, {**KEY, "classifier_steps": 4}, test=TEST)
    assert other.get("10", 0, "real", SUBSET) is None


def test_a_per_class_nan_is_kept(cache):
    """A class with no test image has no accuracy: NaN (written as NaN or null) is valid."""
    path = cache.folder / "10-s0-real.json"
    cell = json.loads(path.read_text())
    cell["per_class_accuracy"] = [0.5, None, math.nan]
    path.write_text(json.dumps(cell))
    got = cache.get("10", 0, "real", SUBSET)
    assert got["per_class_accuracy"][0] == 0.5 and all(
        math.isnan(v) for v in got["per_class_accuracy"][1:])


def test_a_cell_of_another_given_generator_is_recomputed(tmp_path, tiny_generator, tiny_net):
    """--generator names the same file after it was replaced: other weights, same path."""
    import copy

    key = {**KEY, "generator": "gen.safetensors"}
    first = CellCache(tmp_path / "cells", key, test=TEST, generator=tiny_generator)
    first.put(first.cell("10", 0, "gan", SUBSET, _result()))
    same = CellCache(tmp_path / "cells", key, test=TEST, generator=copy.deepcopy(tiny_generator))
    assert same.get("10", 0, "gan", SUBSET) is not None
    other = copy.deepcopy(tiny_generator)
    with torch.no_grad():
        next(other.net.parameters()).add_(1.0)
    replaced = CellCache(tmp_path / "cells", key, test=TEST, generator=other)
    assert replaced.get("10", 0, "gan", SUBSET) is None

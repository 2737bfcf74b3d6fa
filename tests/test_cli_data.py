"""Tests of ``ganaug data info``: the report, the grid, and errors without a traceback."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ganaug.cli import main

REPO = Path(__file__).resolve().parents[1]


def test_data_info_digits_reports_counts_and_shape(capsys):
    assert main(["data", "info", "digits"]) == 0
    out = capsys.readouterr().out
    assert "images:   1,797" in out and "classes:  10" in out and "1x8x8 (grey)" in out
    assert "range:    0..255" in out


def test_data_info_options_and_grid(tmp_path, capsys):
    grid = tmp_path / "grid.png"
    argv = ["data", "info", "digits", "--split", "train", "--per-class", "3", "--size", "12",
            "--channels", "3", "--seed", "5", "--grid", str(grid), "--per-row", "3"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "spec:     digits?split=train&per_class=3&seed=5&size=12&channels=3" in out
    assert "images:   30" in out and "3x12x12 (RGB)" in out
    assert f"grid: {grid}" in out
    assert Image.open(grid).format == "PNG"


@pytest.mark.parametrize("grid, said", [("grid.txt", "image format"),
                                         ("grid.png", "pixels")])
def test_data_info_refuses_a_grid_it_cannot_write_before_loading(grid, said, tmp_path, capsys,
                                                                  monkeypatch):
    """--grid g.txt wrote PNG bytes under a .txt name, and --per-row 10**8 drew a grid no viewer
    opens; both are refused, the name before the data is even loaded."""
    import ganaug.data

    loaded = []
    real_load = ganaug.data.load_data
    monkeypatch.setattr(ganaug.data, "load_data", lambda *a, **k: loaded.append(1) or
                        real_load(*a, **k))
    out = tmp_path / grid
    argv = ["data", "info", "digits", "--grid", str(out), "--per-row", "100000000"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert said in err and "Traceback" not in err and not out.exists()
    if grid.endswith(".txt"):
        assert loaded == []


def test_data_info_imbalance(capsys):
    assert main(["data", "info", "digits", "--imbalance", "10", "--per-class", "100"]) == 0
    out = capsys.readouterr().out
    assert "(min 10, max 100 per class)" in out


def test_data_info_folder(tmp_path, capsys):
    for k, c in enumerate(("a", "b")):
        (tmp_path / c).mkdir()
        for i in range(3):
            Image.fromarray(np.full((6, 6, 3), 50 * k + i, np.uint8)).save(tmp_path / c / f"{i}.png")
    assert main(["data", "info", f"folder:{tmp_path}"]) == 0
    out = capsys.readouterr().out
    assert "images:   6" in out and "3x6x6 (RGB)" in out and "range:    0..52" in out


def _two_classes(root):
    for k, c in enumerate(("a", "b")):
        (root / c).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((6, 6), 50 * k + i, np.uint8)).save(root / c / f"{i}.png")
    return root


@pytest.mark.parametrize("grid", ["a/grid.png", "a/deeper/grid.png", "b/grid.jpg"])
def test_data_info_refuses_a_grid_inside_a_class_folder_of_its_data(tmp_path, capsys, grid):
    """`data info folder:DATA --grid DATA/a/grid.png` wrote the grid into class a: the next load
    of DATA read it as one more image of a (or refused DATA for its odd size)."""
    root = _two_classes(tmp_path / "data")
    code = main(["data", "info", f"folder:{root}", "--grid", str(root / grid)])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert re.search(r"^ganaug: error: --grid .*grid\.(png|jpg) is inside .*data', whose "
                     r"folders are the classes of --data folder:.*Write it outside", err,
                     re.MULTILINE)
    assert not (root / grid).exists()
    assert main(["data", "info", f"folder:{root}"]) == 0  # the data are as they were
    assert "images:   6" in capsys.readouterr().out


def test_data_info_writes_a_grid_beside_the_class_folders(tmp_path, capsys):
    root = _two_classes(tmp_path / "data")
    assert main(["data", "info", f"folder:{root}", "--grid", str(root / "grid.png")]) == 0
    assert main(["data", "info", f"folder:{root}"]) == 0  # a loose file in the root is no image
    assert "images:   6" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["data", "info", "mnist"], "Did you mean 'mnist5k'"),
    (["data", "info", "digits", "--per-class", "500"], "which has only"),
    (["data", "info", "folder:/no/such/dir"], "does not exist"),
])
def test_data_info_errors_exit_2_with_one_paragraph(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("ganaug: error: ") and message in err
    assert err.strip().count("\n") == 0 and "Traceback" not in err


def test_subprocess_bad_spec_has_no_traceback():
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"}
    ok = subprocess.run([sys.executable, "-m", "ganaug", "data", "info", "digits"], cwd=REPO, check=False,
                        env=env, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and "images:   1,797" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "ganaug", "data", "info", "digitz"], cwd=REPO, check=False,
                         env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr and "Did you mean 'digits'" in bad.stderr

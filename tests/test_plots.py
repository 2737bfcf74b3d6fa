"""ganaug.plots: the format a picture is written in, and refusals that leave nothing behind."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from ganaug.errors import GanaugConfigError
from ganaug.plots import figure_format, pyplot, save_class_grid, save_figure


@pytest.mark.parametrize("name, fmt", [("a.png", "png"), ("a.JPG", "jpeg"), ("a.jpeg", "jpeg"),
                                       ("a.tif", "tiff"), ("a.pdf", "pdf"), ("a.svg", "svg")])
def test_figure_format_follows_the_suffix(name, fmt):
    assert figure_format(name) == fmt


def test_a_refused_figure_is_closed_and_nothing_is_written(tmp_path):
    plt = pyplot()
    before = set(plt.get_fignums())
    fig, _ = plt.subplots()
    with pytest.raises(GanaugConfigError, match=r"'.*grid\.txt'.*image format.*grid\.png"):
        save_figure(fig, tmp_path / "grid.txt")
    assert set(plt.get_fignums()) == before and list(tmp_path.iterdir()) == []


def test_class_grid_as_jpeg(tmp_path):
    images = torch.randint(0, 256, (6, 3, 8, 8), dtype=torch.uint8)
    out = save_class_grid(images, torch.tensor([0, 0, 1, 1, 2, 2]), ["a", "b", "c"],
                          tmp_path / "g.jpg", per_row=2)
    with Image.open(out) as im:
        assert im.format == "JPEG" and im.mode == "RGB"


def test_class_names_are_drawn_as_plain_text(tmp_path, monkeypatch):
    # A class folder named "$x^$" made every grid (data info --grid, training samples) fail with
    # matplotlib's raw mathtext ValueError, "5$ and 10$" was drawn as italic math, and a folder
    # name that is not UTF-8 ("caf\xe9" from a Latin-1 zip, read as "caf\udce9") a raw TypeError
    # from FreeType in the first sample grid of `ganaug train`.
    from matplotlib.axes import Axes

    drawn = {}
    real_labels, real_title = Axes.set_yticklabels, Axes.set_title
    monkeypatch.setattr(Axes, "set_yticklabels", lambda self, labels, **kw: drawn.setdefault(
        "labels", real_labels(self, labels, **kw)))
    monkeypatch.setattr(Axes, "set_title", lambda self, text, **kw: drawn.setdefault(
        "title", real_title(self, text, **kw)))
    names = ["$x^$", "caf\udce9", "5$ and 10$"]
    images = torch.randint(0, 256, (6, 3, 8, 8), dtype=torch.uint8)
    out = save_class_grid(images, torch.tensor([0, 0, 1, 1, 2, 2]), names, tmp_path / "g.png",
                          per_row=2, title="folder:/data/$a_1$/caf\udce9")
    assert Image.open(out).size[0] > 0
    assert [t.get_text() for t in drawn["labels"]] == ["$x^$", "caf\\xe9", "5$ and 10$"]
    assert not any(t.get_parse_math() for t in drawn["labels"])
    assert drawn["title"].get_text() == "folder:/data/$a_1$/caf\\xe9"
    assert not drawn["title"].get_parse_math()

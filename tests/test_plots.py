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

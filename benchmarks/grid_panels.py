"""Several class grids (``ganaug sample`` PNGs) side by side in one figure, each with a title.

    python benchmarks/grid_panels.py docs/img/ablation_mnist_grids.png \
        "equal_lr (old preset)=/tmp/g_equal_lr-s0.png" "ttur (preset now)=/tmp/g_ttur-s0.png"

COLS=2 sets the panels per row (default 3).
"""

from __future__ import annotations

import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from PIL import Image


def main(out: str, items: list[str], cols: int = 3) -> None:
    panels = [item.split("=", 1) for item in items]
    cols = min(cols, len(panels))
    rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 4.2, rows * 4.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (title, path) in zip(axes.flat, panels):
        im = Image.open(path)
        w, h = im.size
        ax.imshow(im.crop((int(w * 0.02), int(h * 0.06), int(w * 0.9), h)))  # drop the margins, keep the class names
        ax.set_title(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(out, dpi=70, bbox_inches="tight", pad_inches=0.15)  # titles whole


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2:], cols=int(os.environ.get("COLS", "3")))

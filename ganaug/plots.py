"""Pictures people would rather look at than read: class grids, loss curves, result charts.

matplotlib is imported inside the functions (Agg backend) so ``import ganaug`` stays fast.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from ganaug._checks import is_number
from ganaug._files import atomic_path, check_writable_file
from ganaug.errors import GanaugConfigError

#: The most pixels a class grid drawn on request may have: well below Pillow's
#: decompression-bomb limit (89.5 M pixels), past which viewers built on it refuse to open one.
MAX_GRID_PIXELS = 50_000_000
#: Pixels between the images of a grid (make_grid's padding).
GRID_PAD = 2
#: What a figure's file name may end in, and the format matplotlib writes for it.
FIGURE_FORMATS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".webp": "webp",
                  ".tif": "tiff", ".tiff": "tiff", ".pdf": "pdf", ".svg": "svg"}


def pyplot():
    """matplotlib.pyplot with the non-interactive Agg backend (imported on first use)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def figure_format(path: str | Path) -> str:
    """The format a figure named ``path`` is written in, from its suffix (case-insensitive).

    Raises:
        GanaugConfigError: ``path`` is a folder, or its suffix names no image format (a
            ``.txt``, or none at all), so the file's name would lie about what it holds.
    """
    fmt = FIGURE_FORMATS.get(check_writable_file(path).suffix.lower())
    if fmt is None:
        raise GanaugConfigError(
            f"Cannot write a picture to {str(path)!r}: its name does not end in an image "
            f"format. Use one of {', '.join(FIGURE_FORMATS)} (e.g. {Path(path).stem}.png).")
    return fmt


def save_figure(fig, path: str | Path, *, dpi: int | None = None) -> Path:
    """Write a matplotlib figure atomically in the format its suffix names (:func:`figure_format`),
    close it, and return the path."""
    path = Path(path)
    try:
        fmt = figure_format(path)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=dpi)
    finally:
        pyplot().close(fig)  # also when refused or failed: pyplot keeps open figures alive
    return path


def class_rows(images: torch.Tensor, labels: torch.Tensor, num_classes: int,
               per_row: int) -> torch.Tensor:
    """Arrange images into ``num_classes`` rows of ``per_row`` (blank where a class has fewer).

    Args:
        images: ``(N, C, H, W) uint8``.
        labels: ``(N,)`` int64 in ``[0, num_classes)``.

    Returns:
        ``(num_classes * per_row, C, H, W) uint8``, row-major.
    """
    _, c, h, w = images.shape
    out = torch.zeros(num_classes * per_row, c, h, w, dtype=torch.uint8)
    for k in range(num_classes):
        idx = (labels == k).nonzero().flatten()[:per_row]
        out[k * per_row:k * per_row + len(idx)] = images[idx].cpu()
    return out


def _figure_inches(width: int, height: int, image_height: int,
                   title: str | None) -> tuple[float, float]:
    """The figure size (inches, at 100 dpi) of a class grid ``width`` x ``height`` pixels."""
    scale = max(1.0, 48 / image_height)  # keep tiny images readable
    return width * scale / 100 + 1.6, height * scale / 100 + (0.4 if title else 0.1)


def check_grid_size(rows: int, per_row: int, image_size: int) -> None:
    """Refuse, before anything is drawn, a grid of ``rows`` x ``per_row`` images too large to
    view (more than :data:`MAX_GRID_PIXELS`).

    Raises:
        GanaugConfigError: the grid would be too large; names the size and what to ask instead.
    """
    side = image_size + GRID_PAD
    inches = _figure_inches(per_row * side + GRID_PAD, rows * side + GRID_PAD, image_size, "t")
    width, height = (round(x * 100) for x in inches)
    if width * height > MAX_GRID_PIXELS:
        raise GanaugConfigError(
            f"A grid of {rows} classes x {per_row:,} images of {image_size}x{image_size} would "
            f"be {width:,} x {height:,} pixels, more than image viewers open "
            f"({MAX_GRID_PIXELS:,} pixels). Ask for fewer images per class or fewer classes "
            f"(classes=[...]); to write many images, use export_image_folder (ganaug export).")


def plain_text(text: str) -> str:
    """``text`` as FreeType can draw it: a name read from a folder whose bytes are not UTF-8
    (``"caf\\udce9"``) gets its bytes written out (``"caf\\xe9"``). Callers also pass
    ``parse_math=False``, so ``$`` in a class name or path is a dollar sign, not mathtext."""
    return str(text).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def save_class_grid(images: torch.Tensor, labels: torch.Tensor, class_names: Sequence[str],
                    path: str | Path, *, per_row: int = 8, title: str | None = None,
                    row_classes: Sequence[int] | None = None) -> Path:
    """Save a grid with one row per class and the class names as row labels.

    Args:
        images: ``(N, C, H, W) uint8`` (C is 1 or 3).
        labels: ``(N,)`` int64 class indices into ``class_names``.
        class_names: all class names of the dataset or generator.
        path: the image to write (atomically; its suffix names the format).
        per_row: images per class row.
        title: optional figure title.
        row_classes: which classes get a row (default: all), in order.

    Returns:
        The written path.
    """
    from torchvision.utils import make_grid

    plt = pyplot()
    rows = list(range(len(class_names))) if row_classes is None else list(row_classes)
    remap = torch.full((len(class_names),), -1, dtype=torch.int64)
    remap[torch.tensor(rows, dtype=torch.int64)] = torch.arange(len(rows))
    labels = labels.cpu().long()
    keep = remap[labels] >= 0
    grid_imgs = class_rows(images[keep.to(images.device)].cpu(), remap[labels[keep]], len(rows),
                           per_row)
    pad = GRID_PAD
    grid = make_grid(grid_imgs, nrow=per_row, padding=pad, pad_value=255)
    _, h, _w = grid_imgs.shape[1:]
    arr = grid.permute(1, 2, 0).numpy()
    fig, ax = plt.subplots(figsize=_figure_inches(arr.shape[1], arr.shape[0], h, title), dpi=100)
    ax.imshow(arr.squeeze(-1) if arr.shape[-1] == 1 else arr,
              cmap="gray" if arr.shape[-1] == 1 else None, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([pad + r * (h + pad) + h / 2 for r in range(len(rows))])
    ax.set_yticklabels([plain_text(class_names[k]) for k in rows], fontsize=9, parse_math=False)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    if title:
        ax.set_title(plain_text(title), fontsize=10, parse_math=False)
    fig.tight_layout()
    return save_figure(fig, path)


def save_loss_plot(records: Sequence[dict], path: str | Path,
                   keys: Sequence[str] = ("loss_d", "loss_g"), *, x: str = "step",
                   title: str | None = None) -> Path:
    """Plot the ``keys`` of metric records (dicts, e.g. read from ``metrics.jsonl``) against ``x``."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    for key in keys:
        pts = [(r[x], r[key]) for r in records
               if is_number(r.get(x)) and is_number(r.get(key))]  # text, None: not plotted
        if pts:
            xs, ys = zip(*pts, strict=True)
            ax.plot(xs, ys, label=key, linewidth=1.2)
    ax.set_xlabel(x)
    ax.grid(alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(plain_text(title), parse_math=False)
    fig.tight_layout()
    return save_figure(fig, path)


def save_generator_grid(generator, path: str | Path, *, per_class: int = 8, seed: int = 0,
                        classes: Sequence[str] | None = None, truncation: float = 1.0,
                        title: str | None = None) -> Path:
    """Save a grid of ``generator``'s samples: one row of ``per_class`` images per class.

    Args:
        generator: a :class:`ganaug.Generator`.
        path: the image to write (atomically; its suffix names the format).
        per_class: images per row.
        seed: the noise seed (the same seed gives the same grid).
        classes: class names or indices to show, in this order (default: every class).
        truncation: in (0, 1]; 1.0 means none.
        title: the figure title.

    Returns:
        ``path`` as a :class:`Path`.

    Raises:
        GanaugConfigError: the grid would be too large to view (:func:`check_grid_size`), or
            ``path`` names no image format (:func:`figure_format`).
    """
    figure_format(path)
    rows = generator.num_classes if classes is None else len(classes)
    check_grid_size(rows, per_class, generator.image_size)
    images, labels = generator.sample(classes, n_per_class=per_class, seed=seed,
                                      truncation=truncation, output="uint8", return_labels=True)
    order = labels.tolist()
    rows = sorted(set(order), key=order.index)
    return save_class_grid(images.cpu(), labels.cpu(), generator.classes, path,
                           per_row=per_class, row_classes=rows, title=title)

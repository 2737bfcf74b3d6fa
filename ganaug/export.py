"""Export generated images as an ImageFolder (``DIR/<class>/<index>.png``) plus ``manifest.csv``.

Image ``index`` of class ``label`` is drawn from its own noise seed,
``image_seed(seed, label, index)``, so its pixels depend only on ``(seed, label, index)`` and the
model: re-running reproduces the same files, changing ``batch_size`` changes nothing, and an
interrupted export resumes without rewriting finished images. ``export.json`` records the
arguments, and a rerun into the same folder with different ones is refused.
``SyntheticDataset(cache=DIR)`` reads the same layout through :func:`generate_items`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganaug._files import atomic_path, atomic_write_bytes, atomic_write_text
from ganaug.errors import GanaugConfigError
from ganaug.generator import Generator, check_truncation, truncated_normal

FORMATS = ("png", "jpg")
JPEG_QUALITY = 95
EXPORT_FORMAT = 1
MANIFEST_FIELDS = ("path", "class", "label", "seed", "index")


# -- deterministic per-image noise ------------------------------------------------------------
def image_seed(seed: int, label: int, index: int) -> int:
    """The noise seed of image ``index`` of class ``label`` in an export seeded ``seed``.

    A 64-bit hash (numpy ``SeedSequence``) of the three ints, so neighbouring images get
    unrelated noise streams. All three must be ints >= 0.
    """
    entropy = [int(seed), int(label), int(index)]
    return int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0])


def item_noise(z_dim: int, labels: Sequence[int], indices: Sequence[int], *, seed: int,
               truncation: float = 1.0) -> torch.Tensor:
    """``(N, z_dim)`` float32 CPU noise: row ``i`` from ``image_seed(seed, labels[i], indices[i])``."""
    rows = [truncated_normal(1, z_dim, torch.Generator().manual_seed(image_seed(seed, y, i)),
                             truncation)
            for y, i in zip(labels, indices)]
    return torch.cat(rows) if rows else torch.empty(0, z_dim)


def generate_items(generator: Generator, labels: Sequence[int], indices: Sequence[int], *,
                   seed: int, truncation: float = 1.0, batch_size: int = 256,
                   device: str | torch.device | None = None) -> torch.Tensor:
    """Generate image ``indices[i]`` of class ``labels[i]``, deterministically.

    The image depends only on ``(model, seed, label, index, truncation)`` (and the device's
    arithmetic), never on which other items are requested with it or on ``batch_size``, so
    callers can generate any subset in any order, e.g. to fill a cache lazily.

    Args:
        generator: the model.
        labels: class indices (ints or class names) of the items.
        indices: the per-class image indices (ints >= 0), same length as ``labels``.
        seed: the export seed (int >= 0).
        truncation: in (0, 1]; 1.0 is off.
        batch_size: images per forward pass.
        device: where to run the network (default: where it is).

    Returns:
        ``(N, C, H, W) uint8`` images on ``device``.
    """
    label_idx = [generator.class_index(y) for y in labels]
    indices = [_check_nonneg_int("index", i) for i in indices]
    if len(indices) != len(label_idx):
        raise GanaugConfigError(
            f"labels and indices must have the same length, got {len(label_idx)} and "
            f"{len(indices)}.")
    seed = _check_nonneg_int("seed", seed)
    z = item_noise(generator.z_dim, label_idx, indices, seed=seed, truncation=truncation)
    return generator.generate(z, torch.tensor(label_idx, dtype=torch.int64),
                              batch_size=batch_size, output="uint8", device=device)


def _check_nonneg_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise GanaugConfigError(f"{name} must be an int >= 0, got {value!r}.")
    return int(value)


# -- the export -------------------------------------------------------------------------------
@dataclass
class ExportResult:
    """What :func:`export_image_folder` did.

    Attributes:
        root: the export folder.
        manifest: ``root / "manifest.csv"``.
        written: images written by this call.
        skipped: images already present (from an earlier, interrupted or finished run).
        counts: images per class name.
    """

    root: Path
    manifest: Path
    written: int
    skipped: int
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return self.written + self.skipped

    def __str__(self) -> str:
        return (f"{self.root}: {self.total} images in {len(self.counts)} classes "
                f"({self.written} written, {self.skipped} already there); "
                f"manifest {self.manifest.name}")


def model_fingerprint(generator: Generator) -> str:
    """sha256 of the network's tensors in safetensors form (device- and process-independent)."""
    from safetensors.torch import save as st_save

    from ganaug.io import cpu_state_dict

    return hashlib.sha256(st_save(cpu_state_dict(generator.net))).hexdigest()


def _folder_name(name: str, label: int) -> str:
    """A class name made safe as one folder name (no separators, not '.' or '..')."""
    safe = "".join("_" if c in '/\\\0' else c for c in name).strip()
    return safe if safe not in ("", ".", "..") else f"class_{label}"


def _check_args(generator: Generator, n_per_class: Any, seed: Any, fmt: str,
                classes: Sequence[int | str] | None, truncation: float,
                batch_size: Any) -> list[int]:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or batch_size < 1:
        raise GanaugConfigError(f"batch_size must be an int >= 1, got {batch_size!r}.")
    if isinstance(n_per_class, bool) or not isinstance(n_per_class, (int, np.integer)) \
            or n_per_class < 1:
        raise GanaugConfigError(f"n_per_class must be an int >= 1, got {n_per_class!r}.")
    _check_nonneg_int("seed", seed)
    if fmt not in FORMATS:
        raise GanaugConfigError(
            f"Unknown image format '{fmt}'. Use one of: {', '.join(FORMATS)}.")
    check_truncation(truncation)
    labels = list(range(generator.num_classes)) if classes is None else [
        generator.class_index(c) for c in classes]
    if not labels or len(set(labels)) != len(labels):
        raise GanaugConfigError(
            f"classes must name each class at most once and at least one class, got {classes!r}.")
    return labels


def _check_existing(root: Path, spec: dict[str, Any]) -> None:
    """Refuse a folder holding something else, or an export made with other arguments."""
    spec_path = root / "export.json"
    if spec_path.is_file():
        try:
            old = json.loads(spec_path.read_text())
        except (ValueError, OSError) as err:
            raise GanaugConfigError(
                f"{spec_path} is unreadable ({err}); delete {root} or export elsewhere.") from err
        diffs = [f"{k}: {old.get(k)!r} there, {v!r} now" for k, v in spec.items()
                 if k != "ganaug_version" and old.get(k) != v]
        if diffs:
            raise GanaugConfigError(
                f"{root} already holds an export made with other arguments ("
                + "; ".join(diffs) + "). Rerun with the same arguments to resume it, or export "
                "to a new --out folder (or delete this one).")
    elif root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise GanaugConfigError(
            f"{root} exists and is not an empty folder or a ganaug export (no export.json). "
            "Pick a new --out folder so no other files get mixed into the ImageFolder.")


def _encode(image: torch.Tensor, fmt: str) -> bytes:
    """``(C, H, W) uint8`` CPU image to PNG/JPEG bytes (PIL; deterministic for equal pixels)."""
    from PIL import Image

    arr = image.permute(1, 2, 0).numpy()
    pil = Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr)
    buf = io.BytesIO()
    if fmt == "png":
        pil.save(buf, format="PNG")
    else:
        pil.save(buf, format="JPEG", quality=JPEG_QUALITY)
    return buf.getvalue()


def _save_image(path: Path, image: torch.Tensor, fmt: str) -> None:
    atomic_write_bytes(path, _encode(image, fmt))


def export_image_folder(generator: Generator, out: str | os.PathLike, *, n_per_class: int,
                        seed: int = 0, fmt: str = "png", classes: Sequence[int | str] | None = None,
                        truncation: float = 1.0, batch_size: int = 256,
                        progress: bool = True) -> ExportResult:
    """Write ``n_per_class`` generated images per class as an ImageFolder, resumably.

    Layout: ``out/<class name>/<index>.<fmt>`` (index zero-padded to 6+ digits),
    ``out/manifest.csv`` (columns ``path, class, label, seed, index``; ``path`` relative to
    ``out``, ``label`` the generator's class index) and ``out/export.json`` (the arguments and
    the model's sha256). Every file is written atomically. Note that torchvision's
    ``ImageFolder`` numbers classes in sorted folder order; the manifest keeps the generator's.

    Args:
        generator: the model.
        out: the export folder; new, empty, or an earlier export with the same arguments.
        n_per_class: images per class (int >= 1).
        seed: export seed (int >= 0); see :func:`image_seed`.
        fmt: ``"png"`` (lossless) or ``"jpg"`` (quality 95).
        classes: class names or indices to export (default all).
        truncation: in (0, 1]; 1.0 is off.
        batch_size: images per forward pass; does not change the pixels.
        progress: show a tqdm progress bar.

    Returns:
        An :class:`ExportResult`.

    Raises:
        GanaugConfigError: a bad argument, or ``out`` holds other files or an export made with
            other arguments.
    """
    from tqdm.auto import tqdm

    from ganaug import __version__

    labels = _check_args(generator, n_per_class, seed, fmt, classes, truncation,
                         batch_size)
    n_per_class, seed = int(n_per_class), int(seed)
    root = Path(out)
    folders = {y: _folder_name(generator.classes[y], y) for y in labels}
    if len(set(folders.values())) != len(folders):
        raise GanaugConfigError(
            f"Class names {[generator.classes[y] for y in labels]} map to clashing folder names "
            f"{sorted(folders.values())}; rename the classes (Generator.classes) first.")
    spec = {"format": EXPORT_FORMAT, "ganaug_version": __version__,
            "model_sha256": model_fingerprint(generator), "n_per_class": n_per_class,
            "seed": seed, "fmt": fmt, "jpeg_quality": JPEG_QUALITY if fmt == "jpg" else None,
            "classes": [generator.classes[y] for y in labels], "labels": labels,
            "truncation": float(truncation), "noise": "image_seed(seed, label, index)"}
    _check_existing(root, spec)
    atomic_write_text(root / "export.json", json.dumps(spec, indent=2) + "\n")

    digits = max(6, len(str(n_per_class - 1)))
    items = [(y, i, Path(folders[y]) / f"{i:0{digits}d}.{fmt}")
             for y in labels for i in range(n_per_class)]
    for y in labels:
        (root / folders[y]).mkdir(parents=True, exist_ok=True)
        for stale in (root / folders[y]).glob(".*.tmp"):  # left by a killed run
            stale.unlink()
    todo = [item for item in items if not (root / item[2]).is_file()]
    with tqdm(total=len(items), initial=len(items) - len(todo), unit="img",
              desc=f"export {root.name}", disable=not progress) as bar:
        for start in range(0, len(todo), int(batch_size)):
            chunk = todo[start:start + int(batch_size)]
            images = generate_items(generator, [y for y, _, _ in chunk],
                                    [i for _, i, _ in chunk], seed=seed, truncation=truncation,
                                    batch_size=int(batch_size)).cpu()
            for (_, _, rel), image in zip(chunk, images):
                _save_image(root / rel, image, fmt)
            bar.update(len(chunk))

    manifest = root / "manifest.csv"
    with atomic_path(manifest) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(MANIFEST_FIELDS)
        for y, i, rel in items:
            writer.writerow([rel.as_posix(), generator.classes[y], y, seed, i])
    return ExportResult(root=root, manifest=manifest, written=len(todo),
                        skipped=len(items) - len(todo),
                        counts={generator.classes[y]: n_per_class for y in labels})

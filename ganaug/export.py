"""Export generated images as an ImageFolder (``DIR/<class>/<index>.png``) plus ``manifest.csv``.

Image ``index`` of class ``label`` is drawn from its own noise seed,
``image_seed(seed, label, index)``, so its pixels depend only on ``(seed, label, index)`` and the
model: re-running reproduces the same files, changing ``batch_size`` changes nothing, and an
interrupted export resumes without rewriting finished images. ``export.json`` records the
arguments, and a rerun into the same folder with different ones is refused.
:class:`ImageFolderLayout` holds the layout (folder names, zero padding, ``export.json``,
``manifest.csv``), which ``SyntheticDataset(cache=DIR)`` shares through :func:`generate_items`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import os
import re
import shutil
import tempfile
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ganaug import __version__
from ganaug._checks import check_int, check_seed, check_truncation
from ganaug._files import (
    atomic_path,
    atomic_write_bytes,
    atomic_write_text,
    guard_folder,
    temp_files_of,
)
from ganaug._folders import is_litter
from ganaug._imaging import check_sample_memory, human_bytes
from ganaug._seeding import image_seed
from ganaug._specs import check_output_outside
from ganaug.errors import GanaugConfigError, did_you_mean
from ganaug.generator import Generator, truncated_normal
from ganaug.io import cpu_state_dict

__all__ = ["ExportResult", "ImageFolderLayout", "export_image_folder", "export_spec",
           "folder_name", "generate_items", "image_seed", "item_noise", "model_fingerprint"]

FORMATS = ("png", "jpg")
JPEG_QUALITY = 95
EXPORT_FORMAT = 1
MANIFEST_FIELDS = ("path", "class", "label", "seed", "index")
#: The fewest bytes one exported image and its manifest row can take (the smallest valid PNG is
#: 67 bytes): an export is refused only when even that much cannot fit on the disk.
MIN_IMAGE_BYTES = 64


# -- deterministic per-image noise (image_seed lives in ganaug._seeding) -----------------------
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
    indices = [check_int("index", i, minimum=0) for i in indices]
    if len(indices) != len(label_idx):
        raise GanaugConfigError(
            f"labels and indices must have the same length, got {len(label_idx)} and "
            f"{len(indices)}.")
    seed = check_seed("seed", seed)
    z = item_noise(generator.z_dim, label_idx, indices, seed=seed, truncation=truncation)
    return generator.generate(z, torch.tensor(label_idx, dtype=torch.int64),
                              batch_size=batch_size, output="uint8", device=device)


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

    return hashlib.sha256(st_save(cpu_state_dict(generator.net))).hexdigest()


def export_spec(generator: Generator, *, n_per_class: int, seed: int, fmt: str,
                labels: Sequence[int], truncation: float) -> dict[str, Any]:
    """The ``export.json`` document of an export: its arguments and the model's sha256."""
    return {"format": EXPORT_FORMAT, "ganaug_version": __version__,
            "model_sha256": model_fingerprint(generator), "n_per_class": int(n_per_class),
            "seed": int(seed), "fmt": fmt, "jpeg_quality": JPEG_QUALITY if fmt == "jpg" else None,
            "classes": [generator.classes[y] for y in labels], "labels": list(labels),
            "truncation": float(truncation), "noise": "image_seed(seed, label, index)"}


def folder_name(name: str, label: int) -> str:
    """A class name made safe as one folder name that loads back as a class: no separators, not
    '.' or '..', not hidden or a system folder (``__MACOSX``, ``@eaDir``: ``folder:`` skips
    those), not ``export.json`` or ``manifest.csv`` (the export's own files); such names get a
    leading ``_``.

    Raises:
        GanaugConfigError: the name cannot be a file name here: longer than 255 bytes, or not
            encodable in the file system's encoding.
    """
    safe = "".join("_" if c in '/\\\0' else c for c in name).strip()
    safe = safe if safe not in ("", ".", "..") else f"class_{label}"
    if is_litter(safe) or safe.casefold() in (ImageFolderLayout.SPEC, ImageFolderLayout.MANIFEST):
        safe = "_" + safe.lstrip(".")  # read back, a hidden folder is no class; the root's files
    try:
        encoded = os.fsencode(safe)
        safe.encode("utf-8")  # manifest.csv is UTF-8
    except UnicodeEncodeError as err:
        raise GanaugConfigError(
            f"Class {label} is named {name!r:.80}, which cannot be a folder name ({err.reason} "
            "in the file system's encoding). Export the other classes with classes=[...], or "
            "re-save the generator with other class names.") from None
    if len(encoded) > 255:
        raise GanaugConfigError(
            f"Class {label} is named {name[:40]!r}... ({len(encoded)} bytes), longer "
            "than the 255 bytes a folder name may have. Export the other classes with "
            "classes=[...], or re-save the generator with shorter class names.")
    return safe


def one_folder_on_disk(root: Path, names: Iterable[str]) -> tuple[str, str] | None:
    """Two of ``names`` that the file system holding ``root`` takes for one folder (``a`` and
    ``A`` where case is ignored), found by making them in a hidden scratch folder; None if none
    (or if nothing can be made there: writing will then fail with its own error)."""
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(unicodedata.normalize("NFC", name).casefold(), []).append(name)
    pairs = [group[:2] for group in groups.values() if len(group) > 1]
    if not pairs:
        return None
    near = root
    while not near.exists() and near != near.parent:
        near = near.parent
    try:
        with tempfile.TemporaryDirectory(dir=near, prefix=".ganaug-case-") as scratch:
            for a, b in pairs:
                os.mkdir(Path(scratch, a))
                if os.path.lexists(Path(scratch, b)):
                    return a, b
    except OSError:
        return None
    return None


class ImageFolderLayout:
    """Where an export keeps image ``index`` of class ``label``, and its two bookkeeping files.

    ``root/<class folder>/<index>.<fmt>`` with the index zero-padded to 6 or more digits,
    ``root/manifest.csv`` (:data:`MANIFEST_FIELDS`) and ``root/export.json``
    (:func:`export_spec`). Used by :func:`export_image_folder` and by
    ``SyntheticDataset(cache=DIR)``, so each reads the other's folders.

    Args:
        root: the folder.
        classes: the generator's class names (label ``y`` is ``classes[y]``).
        n_per_class: the most images of one class; sets the zero padding.
        fmt: ``"png"`` or ``"jpg"``.
        labels: the classes laid out (default all).

    Raises:
        GanaugConfigError: two class names map to the same folder name.
    """

    SPEC = "export.json"
    MANIFEST = "manifest.csv"

    def __init__(self, root: str | os.PathLike, classes: Sequence[str], *, n_per_class: int,
                 fmt: str = "png", labels: Sequence[int] | None = None) -> None:
        self.root = Path(root)
        self.classes = list(classes)
        self.fmt = fmt
        self.digits = max(6, len(str(int(n_per_class) - 1)))
        labels = range(len(self.classes)) if labels is None else labels
        self.folders = {y: folder_name(self.classes[y], y) for y in labels}
        if len(set(self.folders.values())) != len(self.folders):
            raise GanaugConfigError(
                f"Class names {[self.classes[y] for y in labels]} map to clashing folder names "
                f"{sorted(self.folders.values())}; rename the classes (Generator.classes) first.")
        folded = one_folder_on_disk(self.root, self.folders.values())
        if folded:
            raise GanaugConfigError(
                f"Class names {folded[0]!r} and {folded[1]!r} are one folder on the file system "
                f"of {self.root} (it ignores case or Unicode normalisation, as macOS and Windows "
                "do): their images would mix. Write to a case-sensitive file system, or rename "
                "the classes (Generator.classes) first.")

    def relpath(self, label: int, index: int) -> str:
        """``<class folder>/<index>.<fmt>``, relative to the root, with ``/`` separators."""
        return f"{self.folders[label]}/{index:0{self.digits}d}.{self.fmt}"

    def path(self, label: int, index: int) -> Path:
        return self.root / self.relpath(label, index)

    def guard(self, spec: dict[str, Any], keys: Iterable[str] | None = None, *,
              write: bool = True, fix: str = "Rerun with the same arguments to resume it, or "
                                             "export to a new out= folder (or delete this "
                                             "one).") -> dict[str, Any] | None:
        """Refuse a root holding other files or an export whose ``keys`` differ from ``spec``.

        ``keys`` defaults to every key but ``ganaug_version``. Returns the ``export.json``
        found there (None for a new or empty folder, where ``spec`` is written unless
        ``write=False``); see :func:`ganaug._files.guard_folder`.
        """
        keys = [k for k in spec if k != "ganaug_version"] if keys is None else keys
        return guard_folder(self.root, spec, keys, name=self.SPEC, what="a ganaug export",
                            fix=fix, write=write)

    def present(self, label: int, n_per_class: int) -> set[int]:
        """The indices below ``n_per_class`` of class ``label`` whose image file exists."""
        folder = self.root / self.folders[label]
        if not folder.is_dir():
            return set()
        name = re.compile(rf"(\d{{{self.digits}}})\.{self.fmt}")
        found = set()
        with os.scandir(folder) as entries:
            for entry in entries:
                match = name.fullmatch(entry.name)
                if match and int(match[1]) < n_per_class and entry.is_file():
                    found.add(int(match[1]))
        return found

    def check_space(self, n_images: int) -> None:
        """Refuse writing ``n_images`` more images when even :data:`MIN_IMAGE_BYTES` each
        cannot fit on the disk that holds (or will hold) the root.

        Raises:
            GanaugConfigError: the disk is too small; names the sizes and the fix.
        """
        disk = self.root
        while not disk.exists() and disk != disk.parent:
            disk = disk.parent
        need, free = n_images * MIN_IMAGE_BYTES, shutil.disk_usage(disk).free
        if need > free:
            raise GanaugConfigError(
                f"An export of {n_images:,} images needs at least {human_bytes(need)}, but the "
                f"disk of {self.root} has {human_bytes(free)} free. Export fewer images "
                f"(n_per_class=) or to a larger disk.")

    def write_manifest(self, items: Iterable[tuple[int, int]], seed: int) -> Path:
        """Write ``manifest.csv`` atomically: one row per ``(label, index)`` in ``items``."""
        manifest = self.root / self.MANIFEST
        with atomic_path(manifest) as tmp, open(tmp, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(MANIFEST_FIELDS)
            for y, i in items:
                writer.writerow([self.relpath(y, i), self.classes[y], y, seed, i])
        return manifest


def _check_args(generator: Generator, n_per_class: Any, seed: Any, fmt: str,
                classes: Sequence[int | str] | None, truncation: float,
                batch_size: Any) -> list[int]:
    check_int("batch_size", batch_size)
    check_int("n_per_class", n_per_class)
    check_seed("seed", seed)
    if fmt not in FORMATS:
        raise GanaugConfigError(
            f"fmt must be one of {', '.join(FORMATS)}, got {fmt!r}." + did_you_mean(fmt, FORMATS))
    check_truncation(truncation)
    labels = list(range(generator.num_classes)) if classes is None else [
        generator.class_index(c) for c in classes]
    if not labels or len(set(labels)) != len(labels):
        raise GanaugConfigError(
            f"classes must name each class at most once and at least one class, got {classes!r}.")
    return labels


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
        progress: show a progress bar (tqdm on a terminal, one line per interval in a log).

    Returns:
        An :class:`ExportResult`.

    Raises:
        GanaugConfigError: a bad argument, or ``out`` holds other files or an export made with
            other arguments.
        GanaugDataError: ``out`` is inside the image folder the model was trained on
            (:attr:`Generator.training_data`), where its folders would be read as classes.
    """
    from ganaug.progress import progress_bar

    labels = _check_args(generator, n_per_class, seed, fmt, classes, truncation,
                         batch_size)
    n_per_class, seed = int(n_per_class), int(seed)
    root = Path(out)
    # class folders of fakes inside the model's own training data would be read as real ones
    check_output_outside(root, generator.training_data)
    layout = ImageFolderLayout(root, generator.classes, n_per_class=n_per_class, fmt=fmt,
                               labels=labels)
    spec = export_spec(generator, n_per_class=n_per_class, seed=seed, fmt=fmt, labels=labels,
                       truncation=truncation)
    layout.guard(spec, write=False)
    total = len(labels) * n_per_class
    present = {y: layout.present(y, n_per_class) for y in labels}  # an earlier run's images
    skipped = sum(map(len, present.values()))
    layout.check_space(total - skipped)
    # a batch's items, noise rows (one tensor each) and images are in memory at once
    check_sample_memory(min(int(batch_size), total - skipped), generator.channels,
                        generator.image_size, generator.z_dim, extra_bytes=512,
                        what=f"batch_size={int(batch_size):,}", fix="Use batch_size <= {fits}.")
    atomic_write_text(root / layout.SPEC, json.dumps(spec, indent=2) + "\n")
    for y in labels:
        (root / layout.folders[y]).mkdir(parents=True, exist_ok=True)
        for stale in temp_files_of(root / layout.folders[y], r"\d+\.(?:png|jpg)"):
            stale.unlink()  # left by a killed run; a user's .draft.tmp is kept

    # Lazily, chunk by chunk: the list of every image of a large export would not fit in memory.
    todo: Iterator[tuple[int, int]] = ((y, i) for y in labels for i in range(n_per_class)
                                       if i not in present[y])
    with progress_bar(total, initial=skipped, unit="img", desc=f"export {root.name}",
                      disable=not progress) as bar:
        while chunk := list(itertools.islice(todo, int(batch_size))):
            images = generate_items(generator, [y for y, _ in chunk], [i for _, i in chunk],
                                    seed=seed, truncation=truncation,
                                    batch_size=int(batch_size)).cpu()
            for (y, i), image in zip(chunk, images):
                _save_image(layout.path(y, i), image, fmt)
            bar.update(len(chunk))

    manifest = layout.write_manifest(((y, i) for y in labels for i in range(n_per_class)), seed)
    return ExportResult(root=root, manifest=manifest, written=total - skipped, skipped=skipped,
                        counts={generator.classes[y]: n_per_class for y in labels})

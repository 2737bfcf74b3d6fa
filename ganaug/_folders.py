"""Scanning an ImageFolder (``PATH/<class>/<image>``) into ``(file, label)`` samples.

The layout and order are torchvision's ``ImageFolder`` (classes are the sorted sub-folder names,
files are sorted by directory, then by name, symlinks are followed), with differences that keep
litter out of the classes: hidden entries (names starting with ``.``: ``.ipynb_checkpoints``,
``.DS_Store``, macOS ``._name`` AppleDouble files) and system folders (``__MACOSX``, a Synology
NAS's ``@eaDir`` thumbnails, ``$RECYCLE.BIN``...) are skipped, each directory is read once (a
symlink loop adds no duplicates), and a folder that cannot be read is refused instead of
silently skipped. A link that would put one class's images in another class (``c -> a``,
``a/all -> ..``) is refused, and so is a class folder named like a split (``Train/``,
``testing/``) that holds class folders: ImageFolder would make it one class of every class's
images.
"""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

import numpy as np

from ganaug.errors import GanaugDataError

__all__ = ["TEST_FOLDERS", "find_classes", "folder_splits", "is_litter", "scan_folder",
           "unicode_forms"]

#: Folder names taken as the held-out part of a folder's own split, in order of preference.
TEST_FOLDERS = ("test", "val", "valid", "validation")


#: Folders that operating systems and NAS boxes write beside the user's files: macOS zips'
#: ``__MACOSX``, Synology's thumbnails (``@eaDir``, one beside every image) and recycle bin,
#: and a Windows drive's recycle bin and system folder.
SYSTEM_FOLDERS = ("__MACOSX", "@eaDir", "#recycle", "$RECYCLE.BIN", "System Volume Information")


def is_litter(name: str) -> bool:
    """Whether a file or folder name is no data: hidden (``.name``) or a system folder
    (:data:`SYSTEM_FOLDERS`: ``__MACOSX``, ``@eaDir``...)."""
    return name.startswith(".") or name in SYSTEM_FOLDERS


def _unreadable(path: str, err: OSError) -> GanaugDataError:
    return GanaugDataError(f"Cannot read folder {path!r} ({err.strerror or err}). Make it "
                           f"readable (chmod), or move it out of the dataset.")


#: Files ganaug writes at the root of its own output folders, and what each marks.
GANAUG_OUTPUTS = {"export.json": "an export (ganaug export, or a SyntheticDataset cache)",
                  "ganaug-synthetic.json": "a SyntheticDataset cache",
                  "metrics.jsonl": "a ganaug train run (sample grids and plots)",
                  "results.json": "a ganaug experiment (plots, GAN runs)",
                  "demo.json": "a ganaug demo"}


def _refuse_outputs(path: Path, classes: list[str]) -> None:
    """Refuse a class folder that is a ganaug output: read as a class, an export (every class's
    synthetic images) or a run folder (its plots) would become one more class of the data."""
    for c in classes:
        marker = next((m for m in GANAUG_OUTPUTS if (path / c / m).is_file()), None)
        if marker is not None:
            raise GanaugDataError(
                f"Folder {str(path / c)!r} holds {marker}: it is a ganaug output, "
                f"{GANAUG_OUTPUTS[marker]}, not a class of real images, and read as class "
                f"{c!r} of {str(path)!r} it would add its images as one more class. Move it out "
                f"of {str(path)!r} (write outputs elsewhere), or read it on its own "
                f"(folder:{path / c}).")


def folder_splits(path: Path) -> dict[str, Path] | None:
    """``{"train": path/train, "test": path/test (or val/, valid/, validation/)}`` or None.

    A split's folders hold class folders and no images of their own: folders called ``train``
    and ``val`` that hold images are classes (a vehicles set's ``train``), not a split.
    """
    test = next((path / n for n in TEST_FOLDERS if _holds_classes(path / n)), None)
    if test is not None and _holds_classes(path / "train"):
        return {"train": path / "train", "test": test}
    return None


#: Folder names (any case) that name a split of the data, not a class, when they hold classes.
SPLIT_NAMES = ("train", "training", "test", "testing", "val", "valid", "validation")


def _refuse_split_folders(path: Path, classes: list[str]) -> None:
    """Refuse a class folder that is a split the layout does not make one (``Train/`` and
    ``Test/``, ``training/``, a ``train/`` beside an unlabelled ``test/`` or alone): read as a
    class, it would hold every class's images, and its sibling split another class. Also a
    lone class folder of class folders: the data is one level down (an unpacked archive)."""
    if len(classes) == 1 and classes[0].lower() not in SPLIT_NAMES and \
            _holds_classes(path / classes[0]):
        inner = find_classes(path / classes[0])
        raise GanaugDataError(
            f"Folder {str(path)!r} has one class folder, {classes[0]!r}, and it holds class "
            f"folders ({', '.join(inner[:5])}{', ...' if len(inner) > 5 else ''}): the data is "
            f"one level down. Pass folder:{path / classes[0]}")
    for c in classes:
        if c.lower() in SPLIT_NAMES and _holds_classes(path / c):
            inner = find_classes(path / c)
            shown = ", ".join(inner[:5]) + (", ..." if len(inner) > 5 else "")
            raise GanaugDataError(
                f"Folder {str(path)!r} is read as class folders, but its folder {c!r} holds class "
                f"folders ({shown}) instead of images: it looks like a split of the data, not a "
                f"class (as one class it would hold every class's images). Read that split alone "
                f"(folder:{path / c}), or name the splits train/ and test/ (or val/), each holding "
                f"the same class folders: ganaug reads those as the data's own split.")


def _holds_classes(path: Path) -> bool:
    """Whether ``path`` is a folder of class folders: a sub-folder and no image of its own."""
    from torchvision.datasets.folder import IMG_EXTENSIONS

    try:
        with os.scandir(path) as entries:
            seen = [(_is_dir(e), e.name.lower()) for e in entries if not is_litter(e.name)]
    except OSError:
        return False
    return (any(folder for folder, _ in seen)
            and not any(name.endswith(IMG_EXTENSIONS) for folder, name in seen if not folder))


def _is_dir(entry: os.DirEntry) -> bool:
    """``entry.is_dir()`` with a dangling or looping symlink as no folder (torchvision's view)."""
    try:
        return entry.is_dir()
    except OSError:
        return False


def unicode_forms(train: list[str], test: list[str]) -> str:
    """A sentence for class names of two splits that print alike but differ in Unicode form
    (``é`` composed on Linux, decomposed as macOS writes names); ``""`` for other differences."""
    def nfc(names: list[str]) -> list[str]:
        return [unicodedata.normalize("NFC", n) for n in names]

    if nfc(train) != nfc(test):
        return ""
    a, b = next((x, y) for x, y in zip(train, test, strict=True) if x != y)
    return (f" They differ only in their Unicode form (accents composed or decomposed, as macOS "
            f"writes names): {a!a} in train, {b!a} in test. Rename the folders of one "
            f"split so that both spell them alike.")


def find_classes(path: Path) -> list[str]:
    """The sorted names of the class folders of ``path`` (litter left out).

    Raises:
        GanaugDataError: ``path`` cannot be read, or has no class folder.
    """
    try:
        with os.scandir(path) as entries:
            classes = sorted(e.name for e in entries if _is_dir(e) and not is_litter(e.name))
    except OSError as err:
        raise _unreadable(str(path), err) from None
    forms: dict[str, str] = {}
    for c in classes:
        twin = forms.setdefault(unicodedata.normalize("NFC", c), c)
        if twin != c:
            raise GanaugDataError(
                f"Folder {str(path)!r} has class folders {twin!a} and {c!a}: the same name in "
                f"another Unicode form (accents composed or decomposed, as macOS writes names), "
                f"so two classes would print alike. Merge them into one folder.")
    if not classes:
        raise GanaugDataError(f"Folder {str(path)!r} has no class sub-folders. Expected the "
                              f"ImageFolder layout PATH/<class>/<image>; make one folder per "
                              f"class.")
    return classes


def class_files(folder: str, extensions: tuple[str, ...],
                others: dict[str, str] | None = None) -> list[str]:
    """Image files under ``folder`` (symlinks followed, litter skipped), each directory once.

    Args:
        others: ``{real path: name}`` of the dataset's other class folders, which no folder
            of this class may lead into or hold (a link would give their images this label).

    Raises:
        GanaugDataError: a folder below ``folder`` cannot be read (os.walk would skip it), or
            leads into another class folder.
    """
    def refuse(err: OSError) -> None:
        raise _unreadable(err.filename or folder, err)

    seen, found = set(), []
    for root, dirs, files in os.walk(folder, followlinks=True, onerror=refuse):
        real = os.path.realpath(root)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        _refuse_other_class(root, real, others or {}, os.path.basename(folder))
        dirs[:] = [d for d in dirs if not is_litter(d)]
        found.append((root, sorted(f for f in files
                                   if f.lower().endswith(extensions) and not is_litter(f))))
    return [os.path.join(root, f) for root, files in sorted(found) for f in files]


def _refuse_other_class(folder: str, real: str, others: dict[str, str], name: str) -> None:
    """Refuse a folder of class ``name`` that is (or holds, or lies in) another class's folder."""
    for other, owner in others.items():
        inside = real == other or real.startswith(other + os.sep)
        if inside or other.startswith(real + os.sep):
            what = f"the images of class {owner!r}" if inside else f"class {owner!r}"
            raise GanaugDataError(
                f"Folder {folder!r} leads to {real!r}, which holds {what}: read as part of "
                f"class {name!r}, those images would get its label too. Remove the link (or "
                f"copy the images you mean into the class).")


def scan_folder(path: Path) -> tuple[list[tuple[str, int]], list[str]]:
    """``([(file, label), ...], classes)`` of the ImageFolder at ``path``.

    Raises:
        GanaugDataError: no class folders, a class folder without images, an unreadable folder,
            a class folder that is a ganaug output or a split (``Train/`` holding class folders).
    """
    from torchvision.datasets.folder import IMG_EXTENSIONS

    classes = find_classes(path)
    _refuse_outputs(path, classes)
    _refuse_split_folders(path, classes)
    reals = {c: os.path.realpath(path / c) for c in classes}
    others = {c: {r: n for n, r in reals.items() if n != c} for c in classes}
    for c in sorted(classes, key=lambda c: not os.path.islink(path / c)):  # a link is to blame
        _refuse_other_class(str(path / c), reals[c], others[c], c)
    samples = [(f, k) for k, c in enumerate(classes)
               for f in class_files(str(path / c), IMG_EXTENSIONS, others[c])]
    counts = np.bincount([k for _, k in samples], minlength=len(classes))
    empty = [c for c, n in zip(classes, counts, strict=True) if n == 0]
    if empty:
        raise GanaugDataError(f"Class folder(s) with no images in {str(path)!r}: "
                              f"{', '.join(empty)}. Accepted extensions: {', '.join(IMG_EXTENSIONS)}; "
                              f"add images or remove these folders.")
    return samples, classes

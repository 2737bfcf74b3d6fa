"""Atomic file writes (a temp file in the destination folder, then ``os.replace``) and folder guards.

A crash or Ctrl-C while writing leaves either the old file or the new one, never half of one.
:func:`guard_folder` claims an output folder for one set of settings and refuses to mix in
files made with others.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from ganaug.errors import GanaugConfigError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_writable_file(path: str | os.PathLike) -> Path:
    """``path`` as a Path, refused when a file cannot be written there: it is an existing
    folder, or its nearest existing parent is a file (or a folder this user cannot write).
    Call it before the compute whose result goes there.

    Raises:
        GanaugConfigError: ``path`` is a folder (the message suggests a file inside it), or
            its parent is a file or not writable.
    """
    path = Path(path)
    if path.is_dir():
        raise GanaugConfigError(
            f"Cannot write {path}: it is a folder. Pass a file path (e.g. {path / 'out.png'}).")
    parent = path.absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise GanaugConfigError(f"Cannot write {path}: a file is in the way ({parent}); a "
                                "folder is needed there.")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise GanaugConfigError(f"Cannot write {path}: permission denied in {parent}; choose a "
                                "folder this user can write.")
    return path


def check_json_file(path: str | os.PathLike) -> Path:
    """:func:`check_writable_file`, and a name that ends in ``.json``: a JSON report written
    under another name would replace what that name says (``--out g.safetensors`` wrote the
    metrics over the model file being evaluated).

    Raises:
        GanaugConfigError: as :func:`check_writable_file`, or a name without ``.json``.
    """
    path = check_writable_file(path)
    if path.suffix.lower() != ".json":
        raise GanaugConfigError(
            f"Cannot write a JSON report to {str(path)!r}: its name does not end in .json, so it "
            f"could replace another kind of file (a model, an image). Use e.g. "
            f"{path.with_suffix('.json').name if path.stem else 'metrics.json'}.")
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    Write the file to the yielded path (with any library's ``save(tmp)``); when the block exits
    without an exception the temp file replaces ``path`` atomically, otherwise it is removed.
    """
    path = check_writable_file(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise GanaugConfigError(f"Cannot write {path}: {os_problem(err)}.") from err
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        # mkstemp makes 0600 files; give the result the permissions a plain open() would.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as err:  # a full disk, a quota, a folder removed under us
        raise GanaugConfigError(f"Cannot write {path}: {os_problem(err)}.") from err
    finally:
        if tmp.exists():
            tmp.unlink()


def temp_files_of(folder: str | os.PathLike, name_pattern: str) -> list[Path]:
    """The temp files that killed :func:`atomic_path` writes left in ``folder``, of files whose
    names match the regex ``name_pattern``: ``.NAME.XXXXXXXX.tmp``, the 8 characters being
    :mod:`tempfile`'s random part. Only these are ganaug's to delete: a user's ``.draft.tmp``
    or ``.notes.txt.abcdefgh.tmp`` in the same folder is not (it was deleted).

    Returns:
        The regular files that match, sorted (none when ``folder`` is no folder).
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    name = re.compile(rf"\.(?:{name_pattern})\.[a-z0-9_]{{8}}\.tmp")
    return sorted(p for p in folder.iterdir() if name.fullmatch(p.name) and p.is_file()
                  and not p.is_symlink())


def os_problem(err: OSError) -> str:
    """A short, actionable reading of an ``OSError`` (full disk, permissions, ...)."""
    import errno

    name = getattr(err, "filename", None)
    where = f" ({name})" if name else ""
    if err.errno == errno.ENOSPC:
        return f"no space left on device{where}; free space or choose another output folder"
    if err.errno == errno.EDQUOT:
        return f"disk quota exceeded{where}; free space or choose another output folder"
    if err.errno in (errno.EACCES, errno.EPERM):
        return f"permission denied{where}; the folder is not writable by this user"
    if err.errno == errno.EROFS:
        return f"read-only file system{where}"
    if err.errno in (errno.ENOTDIR, errno.EEXIST):
        return f"a file is in the way{where}; a folder is needed there"
    if err.errno == errno.ENOENT:
        return f"no such file or folder{where}, and it cannot be created there"
    if err.errno == errno.ENAMETOOLONG:
        return f"file name too long{where}"
    return f"{err.strerror or err}{where}"


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically and return the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and return the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def guard_folder(folder: str | os.PathLike, settings: Mapping[str, Any],
                 keys: Iterable[str] | None = None, *, name: str = "settings.json",
                 what: str = "ganaug output",
                 fix: str = "Use a new folder, or delete this one.",
                 write: bool = True) -> dict[str, Any] | None:
    """Claim ``folder`` for files made with ``settings``; refuse one made with other settings.

    The settings of whatever was written first live in ``folder / name`` (JSON). A later run
    with the same values of ``keys`` may add to the folder (resume, reuse a cache); a run with
    other values, or a folder that holds other files and no settings file, is refused.

    Args:
        folder: the output folder (need not exist).
        settings: JSON-serialisable settings of this run.
        keys: the settings that must match (default: all of them).
        name: the settings file's name inside ``folder``.
        what: what the folder holds, for the messages (e.g. ``"a ganaug export"``).
        fix: the advice closing the mismatch message.
        write: write ``settings`` to ``folder / name`` when the folder is claimed fresh.

    Returns:
        The settings found in the folder, or ``None`` when it was new or empty.

    Raises:
        GanaugConfigError: the settings file is unreadable or differs on ``keys``, or the
            folder holds other files.
    """
    folder = Path(folder)
    path = folder / name
    keys = list(settings) if keys is None else list(keys)
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except (ValueError, OSError) as err:
            raise GanaugConfigError(
                f"{path} is unreadable ({err}); delete {folder} or use another folder.") from err
        if not isinstance(old, dict):  # edited or damaged: old.get raised an AttributeError
            kind = {list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
                type(old), "number")
            raise GanaugConfigError(
                f"{path} is unreadable (it holds a JSON {kind}, not the object ganaug writes); "
                f"delete {folder} or use another folder.")
        diffs = [f"{k}: {old.get(k)!r} there, {settings[k]!r} now" for k in keys
                 if old.get(k) != settings[k]]
        if diffs:
            raise GanaugConfigError(f"{folder} already holds {what} made with other arguments ("
                                    + "; ".join(diffs) + f"). {fix}")
        return old
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise GanaugConfigError(
            f"{folder} exists and is not an empty folder or {what} (no {name}). Pick a new or "
            "empty folder so no other files get mixed in.")
    if write:
        atomic_write_text(path, json.dumps(dict(settings), indent=2) + "\n")
    return None

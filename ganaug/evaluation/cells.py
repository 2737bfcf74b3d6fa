"""The experiment's cell cache: one JSON file per finished (regime, seed, arm), reused by a rerun
with the same settings, and the classifiers other cells need (the ``real`` filter, the teacher).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ganaug._checks import is_number
from ganaug._files import atomic_write_text
from ganaug.errors import GanaugConfigError, GanaugDataError

__all__ = ["CellCache", "as_json", "experiment_folder"]

#: What an experiment writes into its folder (write_outputs, the grids, the caches).
_OUTPUTS = re.compile(r"cells|gans|report\.md|results\.(json|csv)|accuracy\.png|"
                      r"(samples|received|dropped)-.+\.png")


def experiment_folder(out) -> Path:
    """``out`` as the experiment's folder: new, empty, or one an experiment wrote (to resume it
    or reuse its cells), never a file or a folder of other files.

    Raises:
        GanaugConfigError: ``out`` is a file, or a folder holding files an experiment does not
            write and no experiment (no ``cells/`` or ``results.json``).
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise GanaugConfigError(f"out={str(out)!r} is a file, not a folder. Pass a new or "
                                f"empty folder for the experiment.")
    if not out.is_dir() or (out / "cells").is_dir() or (out / "results.json").is_file():
        return out
    other = sorted(p.name for p in out.iterdir() if not _OUTPUTS.fullmatch(p.name))
    if other:
        shown = ", ".join(other[:5]) + (", ..." if len(other) > 5 else "")
        raise GanaugConfigError(
            f"out={str(out)!r} holds other files ({shown}) and no experiment (no cells/ or "
            f"results.json), so its results would be mixed in with them. Pass a new or empty "
            f"folder.")
    return out


def as_json(value: Any) -> Any:
    """``value`` as JSON gives it back (tuples become lists, keys strings)."""
    return json.loads(json.dumps(value))


def _same_settings(saved: Any, key: dict[str, Any]) -> bool:
    """Whether a cell saved with ``saved`` settings matches ``key``. A setting the cell lacks
    matches while it is unset (None or empty: what a setting added later takes for "as
    before"), so adding a setting does not throw away the cells written before it existed."""
    return (isinstance(saved, dict) and set(saved) <= set(key)
            and all(saved[k] == v if k in saved else v in (None, {}, [])
                    for k, v in key.items()))


def _number(value: Any, low: float, high: float, *, nan: bool = False) -> bool:
    """Whether ``value`` is a JSON number (not a bool) in ``[low, high]`` (or NaN/None when
    ``nan``)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return nan
    return is_number(value) and low <= value <= high


def _broken_field(cell: dict[str, Any], n_classes: int) -> str | None:
    """The first result field of a cell that is missing or not what an experiment writes."""
    for name in ("accuracy", "balanced_accuracy"):
        if not _number(cell.get(name), 0.0, 1.0):
            return f"{name} {cell.get(name)!r} (a number in [0, 1])"
    per_class = cell.get("per_class_accuracy")
    if not (isinstance(per_class, list) and len(per_class) == n_classes
            and all(_number(v, 0.0, 1.0, nan=True) for v in per_class)):
        return (f"per_class_accuracy {str(per_class)[:60]!r} (one number in [0, 1] or NaN per "
                f"class, {n_classes} classes)")
    if not _number(cell.get("wall_s"), 0.0, math.inf):
        return f"wall_s {cell.get('wall_s')!r} (seconds)"
    if not (isinstance(cell.get("n_real"), int) and _number(cell["n_real"], 1, math.inf)):
        return f"n_real {cell.get('n_real')!r} (the count of real training images)"
    if not isinstance(cell.get("train_data"), str):
        return f"train_data {cell.get('train_data')!r} (text)"
    return None


class CellCache:
    """Finished cells in ``folder``, one JSON file each with the settings that made it: a rerun
    with the same settings reuses a cell, a cell made with other settings is recomputed.

    A cell also records fingerprints of the images it was trained and tested on (and of a given
    generator's weights): the same spec or path with other contents is other settings. A cell file
    that cannot be read, holds another cell (copied or renamed) or holds results an experiment
    does not write is refused by name, never reused or silently overwritten.

    Args:
        folder: the ``cells`` folder.
        key: the settings a cell must match, or ``arm -> settings``.
        test: the test images (:class:`ganaug.data.LabeledImages`) every cell is tested on.
        generator: the given generator (:class:`ganaug.Generator`), for the arms whose key
            names one; its weights' :func:`ganaug.export.model_fingerprint` is recorded.
    """

    def __init__(self, folder: Path,
                 key: dict[str, Any] | Callable[[str], dict[str, Any]], *, test=None,
                 generator=None) -> None:
        self.folder = folder
        self._key = key
        self._test, self._generator = test, generator
        self._prints: dict[int, tuple[Any, str]] = {}
        self._generator_digest: str | None = None

    def key(self, arm: str) -> dict[str, Any]:
        """The settings (as JSON would give them back) that a cell of ``arm`` must match."""
        return as_json(self._key(arm) if callable(self._key) else self._key)

    def _print(self, data) -> str | None:
        """The fingerprint of ``data`` (images), computed once per object."""
        if data is None:
            return None
        if id(data) not in self._prints:
            self._prints[id(data)] = (data, data.fingerprint())
        return self._prints[id(data)][1]

    def inputs(self, arm: str, subset) -> dict[str, Any]:
        """Fingerprints of what a cell of ``arm`` is computed from: its training ``subset``, the
        test images, and (for an arm using it) the given generator's weights."""
        out = {"data": self._print(subset), "test": self._print(self._test)}
        if self._generator is not None and self.key(arm).get("generator"):
            if self._generator_digest is None:
                from ganaug.export import model_fingerprint

                self._generator_digest = model_fingerprint(self._generator)
            out["generator"] = self._generator_digest
        return out

    def _path(self, regime: str, seed: int, arm: str) -> Path:
        return self.folder / f"{regime}-s{seed}-{arm.replace('+', '_')}.json"

    def _read(self, path: Path) -> dict[str, Any]:
        try:
            cell = json.loads(path.read_bytes().decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            cell, why = None, f"not JSON: {exc}"
        else:
            why = f"a JSON {type(cell).__name__}, not a cell object"
        if not isinstance(cell, dict):
            raise GanaugDataError(
                f"The cached cell {path} is damaged ({why}). Delete it to recompute that cell "
                f"(or delete {path.parent} to recompute all).")
        return cell

    def get(self, regime: str, seed: int, arm: str, subset=None) -> dict[str, Any] | None:
        """The cached cell of ``(regime, seed, arm)`` if it was made with this cache's settings
        from ``subset`` and the test images, else None (to be recomputed).

        Raises:
            GanaugDataError: the cell file is damaged, holds another cell, or holds results an
                experiment does not write.
        """
        path = self._path(regime, seed, arm)
        if not path.is_file():
            return None
        cached = self._read(path)
        mine = {"regime": regime, "seed": seed, "arm": arm}
        theirs = {k: cached.get(k) for k in mine}
        if theirs != mine:
            def name(d: dict[str, Any]) -> str:
                return f"regime {d['regime']}, seed {d['seed']}, arm {d['arm']}"
            raise GanaugDataError(
                f"The cached cell {path} holds the cell of {name(theirs)}, not the {name(mine)} "
                f"its name says: it was copied or renamed. Delete it to recompute that cell.")
        if not _same_settings(cached.get("settings"), self.key(arm)):
            return None
        if cached.get("inputs") != self.inputs(arm, subset):
            return None  # other images (or generator) under the same spec: recompute
        n_classes = len(subset.classes) if subset is not None else len(
            cached.get("per_class_accuracy") or [])
        broken = _broken_field(cached, n_classes)
        if broken is not None:
            raise GanaugDataError(
                f"The cached cell {path} is damaged: {broken}. Delete it to recompute that "
                f"cell.")
        cached["per_class_accuracy"] = [math.nan if v is None else float(v)
                                        for v in cached["per_class_accuracy"]]
        return cached

    def cell(self, regime: str, seed: int, arm: str, subset,
             result: dict[str, Any]) -> dict[str, Any]:
        """A new cell of ``(regime, seed, arm)`` computed from ``subset``: ``result`` (the
        classifier's test results) with what :meth:`get` checks."""
        return {"regime": regime, "seed": seed, "arm": arm, "n_real": len(subset),
                "real_spec": subset.spec, "settings": self.key(arm),
                "inputs": self.inputs(arm, subset), **result}

    def put(self, cell: dict[str, Any]) -> None:
        path = self._path(cell["regime"], cell["seed"], cell["arm"])
        atomic_write_text(path, json.dumps(cell, indent=1) + "\n")

    def real_model(self, regime: str, seed: int, arm: str = "real") -> Path:
        """Where an arm's classifier is kept (``real`` for ``min_confidence``, the teacher)."""
        return self.folder / f"{regime}-s{seed}-{arm.replace('+', '_')}.safetensors"

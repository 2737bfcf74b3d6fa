"""The experiment's cell cache: one JSON file per finished (regime, seed, arm), reused by a rerun
with the same settings, and the classifiers other cells need (the ``real`` filter, the teacher).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ganaug._files import atomic_write_text
from ganaug.errors import GanaugConfigError

__all__ = ["CellCache", "experiment_folder"]

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
        raise GanaugConfigError(f"--out {out} is a file, not a folder. Pass a new or empty "
                                f"folder for the experiment.")
    if not out.is_dir() or (out / "cells").is_dir() or (out / "results.json").is_file():
        return out
    other = sorted(p.name for p in out.iterdir() if not _OUTPUTS.fullmatch(p.name))
    if other:
        shown = ", ".join(other[:5]) + (", ..." if len(other) > 5 else "")
        raise GanaugConfigError(
            f"--out {out} holds other files ({shown}) and no experiment (no cells/ or "
            f"results.json), so its results would be mixed in with them. Pass a new or empty "
            f"folder.")
    return out


def _same_settings(saved: Any, key: dict[str, Any]) -> bool:
    """Whether a cell saved with ``saved`` settings matches ``key``. A setting the cell lacks
    matches while it is unset (None or empty: what a setting added later takes for "as
    before"), so adding a setting does not throw away the cells written before it existed."""
    return (isinstance(saved, dict) and set(saved) <= set(key)
            and all(saved[k] == v if k in saved else v in (None, {}, [])
                    for k, v in key.items()))


class CellCache:
    """Finished cells in ``folder``, one JSON file each with the settings that made it: a rerun
    with the same settings reuses a cell, a cell made with other settings is recomputed."""

    def __init__(self, folder: Path,
                 key: dict[str, Any] | Callable[[str], dict[str, Any]]) -> None:
        self.folder = folder
        self._key = key

    def key(self, arm: str) -> dict[str, Any]:
        """The settings (as JSON would give them back) that a cell of ``arm`` must match."""
        return json.loads(json.dumps(self._key(arm) if callable(self._key) else self._key))

    def _path(self, regime: str, seed: int, arm: str) -> Path:
        return self.folder / f"{regime}-s{seed}-{arm.replace('+', '_')}.json"

    def get(self, regime: str, seed: int, arm: str) -> dict[str, Any] | None:
        path = self._path(regime, seed, arm)
        if path.is_file():
            cached = json.loads(path.read_text())
            if _same_settings(cached.get("settings"), self.key(arm)):
                return cached
        return None

    def put(self, cell: dict[str, Any]) -> None:
        path = self._path(cell["regime"], cell["seed"], cell["arm"])
        atomic_write_text(path, json.dumps(cell, indent=1) + "\n")

    def real_model(self, regime: str, seed: int, arm: str = "real") -> Path:
        """Where an arm's classifier is kept (``real`` for ``min_confidence``, the teacher)."""
        return self.folder / f"{regime}-s{seed}-{arm.replace('+', '_')}.safetensors"

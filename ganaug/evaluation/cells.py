"""The experiment's cell cache: one JSON file per finished (regime, seed, arm), reused by a rerun
with the same settings, and the classifiers other cells need (the ``real`` filter, the teacher).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ganaug._files import atomic_write_text

__all__ = ["CellCache"]


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
            if cached.get("settings") == self.key(arm):
                return cached
        return None

    def put(self, cell: dict[str, Any]) -> None:
        path = self._path(cell["regime"], cell["seed"], cell["arm"])
        atomic_write_text(path, json.dumps(cell, indent=1) + "\n")

    def real_model(self, regime: str, seed: int, arm: str = "real") -> Path:
        """Where an arm's classifier is kept (``real`` for ``min_confidence``, the teacher)."""
        return self.folder / f"{regime}-s{seed}-{arm.replace('+', '_')}.safetensors"

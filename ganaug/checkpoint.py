"""Resume checkpoints of a training run: ``runs/NAME/checkpoints/last.pt``.

Everything is stored as tensors and plain Python types so the file loads with
``torch.load(..., weights_only=True)`` (no arbitrary unpickling): the networks, the EMA copy,
optimizers, grad scalers, the step, every RNG state (torch CPU and CUDA, numpy, python) of
every rank, the data-order position, the adaptive-augment and LeCam states.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganaug._files import atomic_path
from ganaug.errors import GanaugTrainingError

CHECKPOINT_FORMAT = 1


def rng_state() -> dict[str, Any]:
    """This process's RNG states as tensors / plain types."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": list(torch.cuda.get_rng_state_all()) if torch.cuda.is_initialized() else [],
        "numpy": {"kind": str(kind), "keys": torch.from_numpy(keys.astype(np.int64)),
                  "pos": int(pos), "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": [int(version), list(internal), gauss_next],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"].cpu())
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    npy = state["numpy"]
    np.random.set_state((npy["kind"], npy["keys"].numpy().astype(np.uint32), npy["pos"],
                         npy["has_gauss"], npy["cached"]))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """``torch.save`` to a temp file beside ``path``, then rename (never half a file)."""
    state = {"format": CHECKPOINT_FORMAT, **state}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return Path(path)


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True`` (tensors and plain types only).

    Raises:
        GanaugTrainingError: missing or unreadable file, or another format.
    """
    path = Path(path)
    if not path.is_file():
        raise GanaugTrainingError(
            f"No checkpoint at {str(path)!r}, so there is nothing to resume. Check --out, or "
            "drop --resume to start a new run.")
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # torch raises several types for damaged / foreign files
        raise GanaugTrainingError(
            f"Cannot read the checkpoint {str(path)!r} ({type(err).__name__}: {err}). It is "
            "damaged or not a ganaug checkpoint; start a new run with another --out.") from err
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise GanaugTrainingError(
            f"{str(path)!r} is not a ganaug checkpoint of format {CHECKPOINT_FORMAT}.")
    return state

"""The files of a run folder: the resume checkpoint ``checkpoints/last.pt``, ``metrics.jsonl``,
``loss.png`` and the sample grids.

Everything is stored as tensors and plain Python types so the file loads with
``torch.load(..., weights_only=True)`` (no arbitrary unpickling): the networks, the EMA copy,
optimizers, grad scalers, the step, every RNG state (torch CPU and CUDA, numpy, python) of
every rank, the data-order position, the adaptive-augment and LeCam states.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganaug._files import atomic_path, atomic_write_text
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


# -- metrics, plots, samples ----------------------------------------------------------------------
def append_metrics(out: Path, record: dict[str, Any]) -> None:
    """Append one JSON line to ``out/metrics.jsonl``."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "metrics.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")


def read_metrics(out: Path) -> list[dict[str, Any]]:
    """The records of ``out/metrics.jsonl`` (empty when there is none)."""
    path = out / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def trim_metrics(out: Path, step: int) -> None:
    """Drop records after ``step`` (written after the checkpoint, before a crash)."""
    if (out / "metrics.jsonl").is_file():
        keep = [r for r in read_metrics(out) if r.get("step", 0) <= step]
        atomic_write_text(out / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in keep))


def write_loss_plot(out: Path) -> None:
    """``out/loss.png``: loss_d and loss_g against the step."""
    from ganaug.plots import save_loss_plot

    records = read_metrics(out)
    if records:
        save_loss_plot(records, out / "loss.png", title=out.name)


def write_samples(generator, out: Path, step: int, seed: int, per_class: int) -> Path:
    """``out/samples/step_XXXXXX.png``: ``per_class`` images per class row, noise from ``seed``."""
    from ganaug.plots import save_class_grid

    images, labels = generator.sample(n_per_class=per_class, seed=seed, return_labels=True)
    return save_class_grid(images.cpu(), labels.cpu(), generator.classes,
                           out / "samples" / f"step_{step:06d}.png", per_row=per_class,
                           title=f"step {step} (EMA)")

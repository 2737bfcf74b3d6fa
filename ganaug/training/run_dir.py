"""The files of a run folder, and resume.

``RunDir(out)`` owns ``config.yaml``, the resume checkpoint ``checkpoints/last.pt``,
``metrics.jsonl`` and ``generator.safetensors``. The checkpoint is the union of the
``state_dict()`` of every registered object (each owns its top-level keys, as accelerate's
``register_for_checkpointing``), so a new stateful concern adds keys and the file stays
readable by older runs' layout. Everything is stored as tensors and plain Python types, written
atomically and read with ``torch.load(..., weights_only=True)`` only. Under DDP every rank
builds the state (the RNG states are gathered) and rank 0 alone writes.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from ganaug._checks import is_count
from ganaug._files import atomic_path, atomic_write_text, os_problem, temp_files_of
from ganaug.config import TrainConfig, arch_differences, read_yaml
from ganaug.data import LabeledImages
from ganaug.errors import GanaugTrainingError
from ganaug.generator import Generator
from ganaug.io import read_metadata, save
from ganaug.training import distributed
from ganaug.training.distributed import DistInfo

CHECKPOINT_FORMAT = 1
#: The files of a run folder's root that are written atomically (their temp files are ganaug's).
RUN_FILES = ("config.yaml", "metrics.jsonl", "generator.safetensors", "loss.png", ".write-test")


class Stateful(Protocol):
    """Anything with ``state_dict()`` and ``load_state_dict(state)``."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


# -- RNG states -----------------------------------------------------------------------------------
def rng_state() -> dict[str, Any]:
    """This process's RNG states (torch CPU and CUDA, NumPy, Python) as tensors / plain types."""
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


class RankRNG:
    """The global RNG streams of every rank (noise, fake labels, DiffAugment), as one stateful.

    Args:
        dist: this process's rank.
        seed: the run's seed; rank ``r`` seeds its streams with ``seed + 7919 * r``.
        log: where notes go (rank 0 prints).
    """

    def __init__(self, dist: DistInfo, seed: int, log: Callable[[str], None] = print) -> None:
        self.dist, self.seed, self.log = dist, seed, log

    def reseed(self, step: int = 0) -> None:
        """Seed torch, NumPy and Python for this rank (a fresh run: ``step`` 0)."""
        s = self.seed + 7919 * self.dist.rank
        torch.manual_seed(s)
        np.random.seed(s % 2**32)
        random.seed(s)
        if step:
            torch.manual_seed(s + step)

    def state_dict(self) -> dict[str, Any]:
        """``rng``: every rank's states in rank order (a collective); ``world_size``."""
        return {"rng": distributed.gather_objects(self.dist, rng_state()),
                "world_size": self.dist.world}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """This rank's saved states; reseeded (valid, not bit-identical) on another world size."""
        rngs = state["rng"]
        if len(rngs) == self.dist.world:
            set_rng_state(rngs[self.dist.rank])
            return
        self.log(f"note: the checkpoint has {len(rngs)} process(es), this run "
                 f"{self.dist.world}; noise streams are reseeded (the run stays valid, "
                 "not bit-identical).")
        self.reseed(int(state["step"]))


# -- the run folder -------------------------------------------------------------------------------
class RunDir:
    """The run folder ``out`` and its files.

    Args:
        out: the run folder (created on the first write).
        dist: this process's rank; only rank 0 writes files.
    """

    def __init__(self, out: str | Path, *, dist: DistInfo | None = None) -> None:
        self.out = Path(out)
        self.dist = dist or DistInfo()
        self.config_path = self.out / "config.yaml"
        self.ckpt_path = self.out / "checkpoints" / "last.pt"
        self.metrics_path = self.out / "metrics.jsonl"
        self.generator_path = self.out / "generator.safetensors"
        self._stateful: list[Stateful] = []
        self._made: list[Path] = []  # folders check_writable created, deepest first

    def has_checkpoint(self) -> bool:
        return self.ckpt_path.is_file()

    # -- config and the resume guard ------------------------------------------------------
    def write_config(self, cfg: TrainConfig) -> None:
        """``config.yaml``: the resolved config (rank 0)."""
        if self.dist.is_main:
            cfg.to_yaml(self.config_path)

    def saved_config(self, ckpt: Mapping[str, Any]) -> dict[str, Any]:
        """The run's settings: ``config.yaml``, or the checkpoint's copy when it is gone.

        Raises:
            GanaugTrainingError: no ``config.yaml`` and the checkpoint holds no config.
        """
        if self.config_path.is_file():
            return read_yaml(self.config_path)
        saved = ckpt.get("config")
        if not isinstance(saved, dict):
            raise self._damaged("it holds no config and the run has no config.yaml")
        return saved

    def _damaged(self, why: str) -> GanaugTrainingError:
        return GanaugTrainingError(
            f"The checkpoint {str(self.ckpt_path)!r} is damaged or not a checkpoint of this "
            f"run: {why}. Start a new run with another out= (or restore the run's files).")

    def refuse_overwrite(self) -> None:
        """Refuse a new run in a folder that is not new or empty (it would clobber a model,
        append to old metrics, or mix run files into a dataset); stale temp files don't count.

        Raises:
            GanaugTrainingError: the folder holds a run (``resume=True`` continues it), other
                files, is a file, or cannot be written.
        """
        # Rank 0 alone: the others would race with its own writes (the writability probe,
        # config.yaml) and see them as "files already there". A refusal on rank 0 ends the
        # torchrun group; the others wait at the barrier that follows in the trainer.
        if not self.dist.is_main:
            return
        if self.has_checkpoint():
            raise GanaugTrainingError(
                f"{str(self.out)!r} already holds a run (checkpoints/last.pt). Pass resume=True to "
                "continue it, or choose another out= for a new run.")
        if self.out.exists() and not self.out.is_dir():
            raise GanaugTrainingError(
                f"out={str(self.out)!r} is a file, not a folder. Pass a new or empty folder.")
        litter = set(self.temp_files())  # a killed save's, deleted once the folder is free
        held = sorted(p.name for p in self.out.iterdir() if p not in litter
                      ) if self.out.is_dir() else []
        if held:
            more = f", ... ({len(held)} entries)" if len(held) > 5 else ""
            raise GanaugTrainingError(
                f"{str(self.out)!r} already holds files ({', '.join(held[:5])}{more}), so a new "
                "run there could overwrite a model, mix its metrics with old ones or pollute a "
                "dataset. Choose another out= (a new or empty folder), or delete this one if "
                "nothing in it is needed.")
        self.remove_temp_files()
        self.check_writable()

    def check_writable(self) -> None:
        """Create the folder and check a file can be written there (rank 0).

        Raises:
            GanaugTrainingError: permission denied, read-only or full disk, a file in the way.
        """
        if not self.dist.is_main:
            return
        try:
            self._made = [p for p in (self.out, *self.out.parents) if not p.exists()]
            self.out.mkdir(parents=True, exist_ok=True)
            with atomic_path(self.out / ".write-test") as tmp:
                tmp.write_bytes(b"ok")
            (self.out / ".write-test").unlink()
        except OSError as err:
            raise GanaugTrainingError(
                f"cannot write the run folder {str(self.out)!r}: {os_problem(err)}. Choose "
                "another out=.") from err

    def remove_made_folders(self) -> None:
        """Remove the folders :meth:`check_writable` created while they are still empty: a run
        refused after that (bad data, an unknown setting) leaves no trace; a folder the user
        made stays."""
        for folder in self._made:
            try:
                folder.rmdir()
            except OSError:  # something was written there after all: keep it and its parents
                break
        self._made = []

    def temp_files(self) -> list[Path]:
        """The temp files killed atomic saves of the run's own files left
        (``.config.yaml.XXXXXXXX.tmp``, ``checkpoints/.last.pt.XXXXXXXX.tmp``); no other file."""
        return (temp_files_of(self.out, "|".join(map(re.escape, RUN_FILES)))
                + temp_files_of(self.ckpt_path.parent, re.escape(self.ckpt_path.name)))

    def remove_temp_files(self) -> list[Path]:
        """Delete :meth:`temp_files` (rank 0); a user's ``.draft.tmp`` is kept."""
        gone = self.temp_files() if self.dist.is_main else []
        for path in gone:
            path.unlink()
        return gone

    def check_resume(self, cfg: TrainConfig, data: LabeledImages, ckpt: Mapping[str, Any],
                     saved: Mapping[str, Any], fingerprint: str) -> list[str]:
        """Refuse a changed architecture or other training data; return notes on other changes.

        Raises:
            GanaugTrainingError: an architecture field or the class count differs, listing
                each difference; or the data's fingerprint is not the checkpoint's.
        """
        num_classes, classes = ckpt.get("num_classes"), ckpt.get("classes")
        if isinstance(num_classes, bool) or not isinstance(num_classes, int):
            raise self._damaged(f"num_classes is {num_classes!r}, not a class count")
        # The weights follow the checkpoint's own config; config.yaml may have been edited, or
        # the checkpoint copied from another run.
        own = ckpt.get("config")
        diffs = arch_differences(own if isinstance(own, dict) else dict(saved), cfg)
        if num_classes != data.num_classes:
            diffs.append(f"num_classes: {num_classes} (checkpoint) -> "
                         f"{data.num_classes} (now, from the data)")
        elif isinstance(classes, list) and classes != list(data.classes):
            # Same count, other names or order: each label's embedding would change meaning.
            diffs.append(f"classes: {classes!r} (checkpoint) -> {list(data.classes)!r} "
                         "(now, from the data)")
        if diffs:
            raise GanaugTrainingError(
                f"Cannot resume {str(self.out)!r}: the architecture changed.\n  "
                + "\n  ".join(diffs)
                + "\nResume with the original settings, or start a new run with another out=.")
        if ckpt.get("data_fingerprint") != fingerprint:
            # The model file records one training set: a run resumed on other images would
            # name only those, and one that began on the test images would pass as clean.
            began = (own if isinstance(own, dict) else dict(saved)).get("data", "unknown data")
            raise GanaugTrainingError(
                f"Cannot resume {str(self.out)!r}: the training data differ from the "
                f"checkpoint's (it began on {began!s:.200}; now {cfg.data!s:.200}, and the "
                "images, labels or class names are not the same). A resumed run continues on "
                "the images it began on. Resume with the original data, or start a new run "
                "(another out=) to train on these.")
        notes = []
        changed = [k for k, v in cfg.to_dict().items()
                   if k not in ("steps", "resume", "device", "out") and saved.get(k) != v]
        if changed:
            notes.append(f"note: resuming with changed settings: {', '.join(changed)}")
        return notes

    # -- the checkpoint -------------------------------------------------------------------
    def register(self, *objects: Stateful) -> None:
        """Add objects whose ``state_dict()`` makes up the checkpoint, in restore order."""
        self._stateful.extend(objects)

    def save_checkpoint(self) -> Path:
        """Write ``checkpoints/last.pt`` from the registered objects (every rank calls it: a
        ``state_dict`` may be a collective; rank 0 writes).

        Raises:
            GanaugTrainingError: two registered objects claim the same key.
        """
        state: dict[str, Any] = {"format": CHECKPOINT_FORMAT}
        for obj in self._stateful:
            part = obj.state_dict()
            clash = sorted(state.keys() & part.keys())
            if clash:
                raise GanaugTrainingError(
                    f"{type(obj).__name__}.state_dict() repeats the checkpoint keys {clash}; "
                    "each registered object must own its keys.")
            state.update(part)
        if self.dist.is_main:
            with atomic_path(self.ckpt_path) as tmp:
                torch.save(state, tmp)
        return self.ckpt_path

    def load_checkpoint(self) -> dict[str, Any]:
        """Load ``checkpoints/last.pt`` with ``weights_only=True`` (tensors and plain types).

        Raises:
            GanaugTrainingError: missing or unreadable file, or another format.
        """
        path = self.ckpt_path
        if not path.is_file():
            raise GanaugTrainingError(
                f"No checkpoint at {str(path)!r}, so there is nothing to resume. Check out=, or "
                "drop resume=True to start a new run.")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # torch raises several types for damaged / foreign files
            raise GanaugTrainingError(
                f"Cannot read the checkpoint {str(path)!r} ({type(err).__name__}: {err}). It is "
                "damaged or not a ganaug checkpoint; start a new run with another out=.") from err
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            raise GanaugTrainingError(
                f"{str(path)!r} is not a ganaug checkpoint of format {CHECKPOINT_FORMAT}.")
        return state

    def restore(self, ckpt: Mapping[str, Any]) -> None:
        """Give the checkpoint to every registered object's ``load_state_dict``, in order.

        Raises:
            GanaugTrainingError: the checkpoint lacks an object's keys or holds tensors of
                other shapes (another network's checkpoint, or a damaged one).
        """
        for obj in self._stateful:
            try:
                obj.load_state_dict(ckpt)
            except (KeyError, IndexError, RuntimeError, TypeError, ValueError,
                    AttributeError) as err:
                problem = " ".join(str(err).split())
                raise GanaugTrainingError(
                    f"The checkpoint {str(self.ckpt_path)!r} does not fit this run: "
                    f"{type(obj).__name__} cannot load it ({type(err).__name__}: "
                    f"{problem[:300]}). It is damaged or comes from another network; resume "
                    "with the run's own checkpoint, or start a new run with another out=."
                ) from err

    # -- metrics ----------------------------------------------------------------------------
    def append_metrics(self, record: dict[str, Any]) -> None:
        """Append one JSON line to ``metrics.jsonl`` (rank 0)."""
        if self.dist.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            with open(self.metrics_path, "ab+") as f:
                # A process killed mid-write leaves a torn last line: end it first.
                f.seek(0, 2)
                torn = f.tell() > 0 and (f.seek(-1, 2), f.read(1))[1] != b"\n"
                f.write((("\n" if torn else "") + json.dumps(record) + "\n").encode())

    def read_metrics(self) -> list[dict[str, Any]]:
        """The records of ``metrics.jsonl`` (empty when there is none); lines torn by a killed
        write, and records whose ``step`` is no int >= 0 (an edited or damaged line), are
        skipped."""
        if not self.metrics_path.is_file():
            return []
        records = []
        for line in self.metrics_path.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and is_count(record.get("step", 0)):
                records.append(record)
        return records

    def trim_metrics(self, step: int) -> None:
        """Drop records after ``step`` (written after the checkpoint, before a crash; rank 0)."""
        if self.dist.is_main and self.metrics_path.is_file():
            keep = [r for r in self.read_metrics() if r.get("step", 0) <= step]
            atomic_write_text(self.metrics_path, "".join(json.dumps(r) + "\n" for r in keep))

    # -- the model file ---------------------------------------------------------------------
    def write_generator(self, generator: Generator, summary: dict[str, Any]) -> Path:
        """``generator.safetensors`` with ``summary`` as its ``training`` metadata (rank 0)."""
        if self.dist.is_main:
            save(generator, self.generator_path, metadata={"training": summary})
        return self.generator_path

    def finished(self, steps: int | None, fingerprint: Callable[[], str]) -> bool:
        """Whether ``generator.safetensors`` is a finished run of ``steps`` steps (None: the
        run's own total) on the data whose fingerprint ``fingerprint()`` returns."""
        if not self.generator_path.is_file():
            return False
        training = read_metadata(self.generator_path).get("training") or {}
        config = training.get("config")
        if steps is None and not isinstance(config, dict):
            return False  # edited or damaged: its total is unknown, so train (or resume) again
        target = steps if steps is not None else config.get("steps")
        return training.get("steps") == target and training.get("data_fingerprint") == fingerprint()


__all__ = ["CHECKPOINT_FORMAT", "RankRNG", "RunDir", "Stateful", "rng_state", "set_rng_state"]

"""Seeds: hashing integers into seeds, and telling one process or DataLoader worker from another.

Every random stream in ganaug that must differ per worker, per class or per image is seeded from
:func:`derive_seed` (or :func:`image_seed`, whose bit layout fixes the bytes of exported images
and must not change).
"""

from __future__ import annotations

import os

import numpy as np
import torch


def derive_seed(*parts: int) -> int:
    """Mix integers into one well-spread seed in ``[0, 2**63)`` (NumPy ``SeedSequence``)."""
    words = np.random.SeedSequence([int(p) % 2**64 for p in parts]).generate_state(2, np.uint32)
    return (int(words[0]) << 31) ^ int(words[1])


def image_seed(seed: int, label: int, index: int) -> int:
    """The noise seed of image ``index`` of class ``label`` in an export seeded ``seed``.

    A 64-bit hash (NumPy ``SeedSequence``) of the three ints, so neighbouring images get
    unrelated noise streams. All three must be ints >= 0.
    """
    entropy = [int(seed), int(label), int(index)]
    return int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0])


def worker_key() -> tuple[int, int | None, int | None]:
    """Identify the current process: ``(pid, worker id, worker seed)`` (``None`` outside workers)."""
    info = torch.utils.data.get_worker_info()
    if info is None:
        return (os.getpid(), None, None)
    return (os.getpid(), int(info.id), int(info.seed))


def distributed_rank() -> int:
    """This process's rank in a distributed run of more than one process, else 0: from
    ``torch.distributed`` when initialised, else torchrun's ``RANK``/``WORLD_SIZE`` (which
    DataLoader workers inherit)."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return int(dist.get_rank()) if dist.get_world_size() > 1 else 0
    try:
        world, rank = int(os.environ.get("WORLD_SIZE") or 1), int(os.environ.get("RANK") or 0)
    except ValueError:
        return 0
    return max(rank, 0) if world > 1 else 0


def worker_stream_seed(seed: int | None) -> int:
    """The seed of an augmentation stream in this process: distinct per worker, per epoch and
    per distributed rank.

    In a DataLoader worker, ``seed`` is mixed with the worker's seed, which the DataLoader draws
    afresh for every epoch from its ``generator=``: workers and epochs draw different images,
    and a seeded DataLoader reproduces them. In the main process: a function of ``seed``.
    ``seed=None``, in every process: a draw from torch's global RNG (in a worker the DataLoader
    seeds it with the worker seed), so two unseeded streams of one process differ (from the
    worker seed alone, every unseeded transform of a worker drew the same stream).
    In a distributed run the rank (:func:`distributed_rank`) is mixed in, so ranks seeded alike
    do not draw the same images; rank 0 draws what a single process draws.
    """
    _, _, worker_seed = worker_key()
    if seed is None:
        base = int(torch.randint(0, 2**62, ()).item())
    elif worker_seed is not None:
        base = derive_seed(seed, worker_seed)
    else:
        base = derive_seed(seed)
    rank = distributed_rank()
    return derive_seed(base, rank) if rank else base


class WorkerStream:
    """Says when a per-process random stream must be (re)seeded: once in every process.

    A transform is pickled (or forked) into each DataLoader worker with the state its stream had
    in the main process. :meth:`due` is true until the stream is :meth:`claim`-ed in the current
    process or worker (and again after :meth:`reset`), so the owner reseeds exactly once there,
    typically from :func:`worker_stream_seed`.
    """

    def __init__(self) -> None:
        self._owner: tuple | None = None

    def due(self) -> bool:
        """True when the stream has not been seeded in this process yet."""
        return self._owner != worker_key()

    def claim(self) -> None:
        """Mark the stream as seeded in this process."""
        self._owner = worker_key()

    def reset(self) -> None:
        """Make :meth:`due` true again, e.g. after the base seed changed."""
        self._owner = None

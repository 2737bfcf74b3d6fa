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


def stream_seed(seed: int | None, *salt: int) -> int:
    """The seed of this process's random stream: distinct per DataLoader worker.

    With ``seed`` given, the stream is a function of ``(seed, salt, worker id)`` and so
    reproducible; with ``seed=None`` it comes from the worker's own seed (which a seeded
    DataLoader makes reproducible) or, in the main process, from torch's global RNG.
    """
    _, worker, worker_seed = worker_key()
    if seed is not None:
        return derive_seed(seed, *salt, -1 if worker is None else worker)
    if worker_seed is not None:
        return derive_seed(worker_seed, *salt)
    return derive_seed(int(torch.randint(0, 2**62, (1,)).item()), *salt)

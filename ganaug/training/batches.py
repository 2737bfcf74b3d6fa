"""The real batches of a run: a sharded, seeded order that is a pure function of the batch
counter (so a resume continues exactly), sliced from the in-memory uint8 dataset in this process
or ahead of time by DataLoader workers.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import torch

from ganaug._checks import most_threads
from ganaug.config import TrainConfig
from ganaug.data import LabeledImages
from ganaug.errors import GanaugConfigError, GanaugDataError
from ganaug.training.distributed import DistInfo

Batch = tuple[torch.Tensor, torch.Tensor]


class BatchOrder:
    """Which images form real batch ``i`` of this rank (a pure function of ``i``).

    Epoch ``e`` is ``torch.randperm(n, generator=Generator().manual_seed(seed + e))``; rank ``r``
    of ``w`` takes every ``w``-th index from ``r`` (DistributedSampler's sharding, remainder
    dropped); batches are consecutive ``batch_size`` slices, the last partial one dropped.
    """

    def __init__(self, n: int, batch_size: int, seed: int, rank: int = 0, world: int = 1):
        self.n, self.batch_size, self.seed, self.rank, self.world = n, batch_size, seed, rank, world
        self.per_rank = n // world
        self.batches_per_epoch = self.per_rank // batch_size
        self._epoch, self._shard = -1, torch.empty(0, dtype=torch.int64)

    def indices(self, i: int) -> torch.Tensor:
        """``(batch_size,)`` int64 indices of real batch ``i`` (``i >= 0``)."""
        epoch, pos = divmod(i, self.batches_per_epoch)
        if epoch != self._epoch:
            perm = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed + epoch))
            self._shard = perm[self.rank:self.per_rank * self.world:self.world]
            self._epoch = epoch
        return self._shard[pos * self.batch_size:(pos + 1) * self.batch_size]


class RealBatches(torch.utils.data.Dataset):
    """Item ``i`` is real batch ``i`` (uint8 images, labels): DataLoader workers slice ahead."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, order: BatchOrder):
        self.images, self.labels, self.order = images, labels, order

    def __len__(self) -> int:
        return 2**62

    def __getitem__(self, i: int) -> Batch:
        idx = self.order.indices(int(i))
        return self.images[idx], self.labels[idx]


def check_data(data: LabeledImages, batch_size: int, dist: DistInfo) -> None:
    """Refuse data that cannot give one batch per process, or labels outside the class list.

    Raises:
        GanaugDataError: too few images, or a label outside ``[0, num_classes)``.
    """
    n_rank = len(data) // dist.world
    if n_rank < batch_size:
        per = f", {n_rank} per process ({dist.world} processes)" if dist.enabled else ""
        raise GanaugDataError(
            f"The dataset has {len(data)} images{per} — fewer than one batch of "
            f"{batch_size}. Use a smaller batch, e.g. batch_size={max(1, n_rank // 2)}, "
            "or more data.")
    labels = data.labels
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= data.num_classes):
        raise GanaugDataError(
            f"Labels range over [{int(labels.min())}, {int(labels.max())}] but the dataset "
            f"has {data.num_classes} classes ({', '.join(data.classes[:10])}); labels must "
            f"be in [0, {data.num_classes - 1}]. Fix the labels or the class list.")


def check_workers(num_workers: int) -> None:
    """Refuse more DataLoader workers than 4 per CPU (at least 8): each is a process.

    Raises:
        GanaugConfigError: ``num_workers`` above that (``--workers 1000000`` started processes
            until the machine froze).
    """
    cpus, most = os.cpu_count() or 1, most_threads()
    if num_workers > most:
        raise GanaugConfigError(
            f"num_workers={num_workers} would start {num_workers:,} worker processes; this "
            f"machine has {cpus} CPUs, so ganaug allows at most {most}. Use num_workers=0 (batches "
            "are slices of an in-memory tensor) or a few.")


class RealBatchSource:
    """The real batches of a run, as float ``(B, C, H, W)`` in ``[-1, 1]`` on ``device``.

    The dataset stays uint8 in memory; on a GPU it moves there once when it is small. With
    ``cfg.num_workers > 0`` (and the data on the CPU), DataLoader workers slice the same
    batches, in the same order, ahead of the step.

    Args:
        data: the training images.
        cfg: the resolved config (``batch_size``, ``d_steps``, ``seed``, ``num_workers``,
            ``channels_last``).
        device: where the batches go.
        dist: this process's rank (each rank takes its own shard).
    """

    def __init__(self, data: LabeledImages, cfg: TrainConfig, device: torch.device,
                 dist: DistInfo | None = None) -> None:
        dist = dist or DistInfo()
        check_workers(cfg.num_workers)
        images = data.images
        if device.type == "cuda" and images.numel() < 2**31:
            images = images.to(device)
        self.images, self.labels = images, data.labels.to(images.device)
        self.order = BatchOrder(len(data), cfg.batch_size, cfg.seed, dist.rank, dist.world)
        self.device, self.d_steps, self.seed = device, cfg.d_steps, cfg.seed
        self.num_workers, self.channels_last = cfg.num_workers, cfg.channels_last
        self._iter: Iterator[Batch] | None = None
        self._next = -1

    def for_step(self, step: int) -> list[Batch]:
        """The ``d_steps`` real batches of generator step ``step`` (0-based)."""
        return [self.batch(step * self.d_steps + j) for j in range(self.d_steps)]

    def batch(self, i: int) -> Batch:
        """Real batch ``i``: ``(images in [-1, 1], labels)`` on the device."""
        if self.num_workers > 0 and self.images.device.type == "cpu":
            if self._iter is None or self._next != i:
                self._iter = self._worker_batches(i)
            images, labels = next(self._iter)
            self._next = i + 1
        else:
            idx = self.order.indices(i).to(self.images.device)
            images, labels = self.images[idx], self.labels[idx]
        real = images.to(self.device, non_blocking=True).float().div_(127.5).sub_(1.0)
        if self.channels_last:
            real = real.contiguous(memory_format=torch.channels_last)
        return real, labels.to(self.device, non_blocking=True)

    def _worker_batches(self, start: int) -> Iterator[Batch]:
        loader = torch.utils.data.DataLoader(
            RealBatches(self.images, self.labels, self.order), batch_size=None,
            sampler=range(start, 2**62), num_workers=self.num_workers,
            pin_memory=self.device.type == "cuda",
            # its own generator: the workers' base seed must not consume the global RNG
            generator=torch.Generator().manual_seed(self.seed))
        return iter(loader)


__all__ = ["BatchOrder", "RealBatchSource", "RealBatches", "check_data"]

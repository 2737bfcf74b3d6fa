"""Multi-process training through PyTorch's own engine (``torchrun`` + DDP), and the sharded,
resumable order of real batches.

``torchrun --nproc_per_node=N -m ganaug train ...`` sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``; :func:`setup` reads them through
``init_process_group`` (NCCL on CUDA, gloo on the CPU). Without them, training is one process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from ganaug.errors import GanaugConfigError


@dataclass
class DistInfo:
    """Where this process stands: ``rank`` of ``world`` processes, ``local_rank`` on its node."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owns_group: bool = False  # True when setup() created the process group (and must end it)

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def select_device(preference: str | None, local_rank: int = 0) -> torch.device:
    """``cuda`` when available, else ``mps``, else ``cpu``; ``preference`` overrides.

    Raises:
        GanaugConfigError: the requested device does not exist on this machine.
    """
    if preference is None:
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        mps = getattr(torch.backends, "mps", None)
        return torch.device("mps" if mps is not None and mps.is_available() else "cpu")
    device = torch.device(preference)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise GanaugConfigError(
                f"--device {preference} asked for CUDA, but torch sees no CUDA GPU here. Use "
                "--device cpu, or leave --device out to pick the best available.")
        if device.index is None:
            device = torch.device("cuda", local_rank % torch.cuda.device_count())
        elif device.index >= torch.cuda.device_count():
            raise GanaugConfigError(
                f"--device {preference}: only {torch.cuda.device_count()} CUDA device(s) exist.")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise GanaugConfigError(f"--device {preference}: MPS is not available on this machine.")
    return device


def setup(preference: str | None) -> tuple[DistInfo, torch.device]:
    """Join the torchrun process group when the env says so; pick this process's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo(), select_device(preference)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = select_device(preference, local_rank)
    owns = False
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend)
        owns = True
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, owns), device


def teardown(info: DistInfo) -> None:
    """End the process group if :func:`setup` started it."""
    if info.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def gather_objects(info: DistInfo, obj: Any) -> list[Any]:
    """Every rank's ``obj`` in rank order (a list of one without DDP)."""
    if not info.enabled:
        return [obj]
    out: list[Any] = [None] * info.world
    dist.all_gather_object(out, obj)
    return out


def all_reduce_(info: DistInfo, tensor: torch.Tensor, op: str = "max") -> torch.Tensor:
    """In-place all-reduce (``max`` / ``min`` / ``sum``); a no-op without DDP."""
    if info.enabled:
        dist.all_reduce(tensor, op={"max": dist.ReduceOp.MAX, "min": dist.ReduceOp.MIN,
                                    "sum": dist.ReduceOp.SUM}[op])
    return tensor


def broadcast_float(info: DistInfo, value: float, device: torch.device) -> float:
    """Rank 0's ``value`` on every rank (keeps ADA's probability equal across processes)."""
    if not info.enabled:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.broadcast(t, src=0)
    return float(t.item())


def wrap_ddp(module: torch.nn.Module, info: DistInfo, device: torch.device) -> torch.nn.Module:
    """``DistributedDataParallel(module)`` under torchrun, the module itself otherwise.

    Plain BatchNorm stays per-process (statistics of the local batch); the EMA copy's BN
    buffers are rank 0's, broadcast by DDP at each forward.
    """
    if not info.enabled:
        return module
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids)


# -- data order ----------------------------------------------------------------------------------
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

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = self.order.indices(int(i))
        return self.images[idx], self.labels[idx]

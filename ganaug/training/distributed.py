"""Multi-process training through PyTorch's own engine (``torchrun`` + DDP).

``torchrun --nproc_per_node=N -m ganaug train ...`` sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``; :func:`setup` reads them through
``init_process_group`` (NCCL on CUDA, gloo on the CPU). Without them, training is one process
and every function here is a no-op.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from ganaug._devices import DeviceLike, resolve_device


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


def setup(device: DeviceLike) -> tuple[DistInfo, torch.device]:
    """Join the torchrun process group when the env says so; pick this process's device.

    Args:
        device: the device preference (``None``: the best available, this rank's GPU).

    Raises:
        GanaugConfigError: the requested device does not exist on this machine.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo(), resolve_device(device)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank=local_rank)
    owns = False
    if not dist.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
        owns = True
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, owns), dev


def teardown(info: DistInfo) -> None:
    """End the process group if :func:`setup` started it."""
    if info.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    """Wait for every rank (a no-op without DDP)."""
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
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids)


__all__ = ["DistInfo", "all_reduce_", "barrier", "broadcast_float", "gather_objects", "setup",
           "teardown", "wrap_ddp"]

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

from ganaug._checks import number_text
from ganaug._devices import DeviceLike, resolve_device
from ganaug.errors import GanaugConfigError

#: What torchrun sets for every process; a partial or inconsistent set is refused by name.
TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


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
    world = _env_int("WORLD_SIZE", "1")
    if world <= 1:
        return DistInfo(), resolve_device(device)
    missing = [name for name in TORCHRUN_ENV if not os.environ.get(name, "").strip()]
    if missing:
        raise GanaugConfigError(
            f"WORLD_SIZE={world} asks for {world} processes, but {', '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not set. Start multi-process training with "
            "torchrun --nproc_per_node=N -m ganaug train ..., which sets all of "
            f"{', '.join(TORCHRUN_ENV)}; or unset WORLD_SIZE for one process.")
    rank, local_rank = _env_int("RANK"), _env_int("LOCAL_RANK")
    if not 0 <= rank < world or not 0 <= local_rank <= rank:
        raise GanaugConfigError(
            f"RANK={rank} and LOCAL_RANK={local_rank} do not fit WORLD_SIZE={world}: "
            f"0 <= LOCAL_RANK <= RANK < WORLD_SIZE. Let torchrun set them.")
    _env_int("MASTER_PORT")
    dev = resolve_device(device, local_rank=local_rank)
    owns = False
    if not dist.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
        owns = True
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, owns), dev


def _env_int(name: str, default: str | None = None) -> int:
    """The torchrun environment variable ``name`` as an int >= 0 (``default`` when unset)."""
    text = os.environ.get(name, default)
    try:
        value = number_text((text or "").strip(), int)
    except ValueError:
        value = -1
    if value < 0:
        raise GanaugConfigError(f"The environment variable {name}={text!r} is not an integer "
                                f">= 0. torchrun sets it; unset it to train in one process.")
    return value


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

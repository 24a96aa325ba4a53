"""The few torch.distributed (c10d) collectives the exact search uses.

When a default process group is initialised (``torchrun``: gloo on CPUs, NCCL on GPUs),
the search splits its tiles between the ranks and combines their findings with these
calls, so every rank ends with the same result. Without a process group they are no-ops.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["rank_and_world", "all_reduce", "all_gather_concat", "all_gather_objects", "agree_on_min"]


def rank_and_world() -> tuple[int, int]:
    """``(rank, world_size)`` of the default process group, ``(0, 1)`` without one."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _backend_device(tensor: torch.Tensor) -> torch.device:
    """NCCL reduces CUDA tensors only; gloo reduces CPU tensors (and CUDA ones by copy)."""
    if torch.distributed.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce(tensor: torch.Tensor, op: str) -> torch.Tensor:
    """``tensor`` reduced over the ranks with ``op`` (``"sum"``, ``"min"``, ``"max"``)."""
    if rank_and_world()[1] == 1:
        return tensor
    reduce_op = {"sum": torch.distributed.ReduceOp.SUM, "min": torch.distributed.ReduceOp.MIN,
                 "max": torch.distributed.ReduceOp.MAX}[op]
    moved = tensor.to(_backend_device(tensor)).contiguous()
    torch.distributed.all_reduce(moved, op=reduce_op)
    return moved.to(tensor.device)


def all_gather_concat(tensor: torch.Tensor, dim: int) -> torch.Tensor:
    """Equal-shaped tensors of all ranks, concatenated along ``dim`` in rank order."""
    _, world = rank_and_world()
    if world == 1:
        return tensor
    moved = tensor.to(_backend_device(tensor)).contiguous()
    parts = [torch.empty_like(moved) for _ in range(world)]
    torch.distributed.all_gather(parts, moved)
    return torch.cat(parts, dim=dim).to(tensor.device)


def all_gather_objects(value: Any) -> list[Any]:
    """A picklable value from every rank, in rank order."""
    _, world = rank_and_world()
    if world == 1:
        return [value]
    gathered: list[Any] = [None] * world
    torch.distributed.all_gather_object(gathered, value)
    return gathered


def agree_on_min(value: int) -> int:
    """The smallest of an integer over the ranks (e.g. a memory budget that sets tiles)."""
    return int(all_reduce(torch.tensor([value], dtype=torch.int64), "min").item())

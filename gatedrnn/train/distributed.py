"""Single-process and ``torchrun`` training share one code path.

Under ``torchrun`` (``WORLD_SIZE`` > 1 in the environment) :func:`setup` starts the
process group: gloo on CPU, NCCL on CUDA (one GPU per process, ``LOCAL_RANK``).
Otherwise it returns a world of one, and nothing distributed is ever called.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import List, Tuple

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = ["World", "setup", "teardown", "all_sum", "any_true", "gather_objects"]


@dataclass(frozen=True)
class World:
    rank: int
    size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device: str) -> World:
    """The process's place in the run; ``device`` is ``auto``, ``cpu``, ``cuda`` or ``cuda:N``."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    target = torch.device(device)
    if target.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but CUDA is not available here")
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World(0, 1, target)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if target.type == "cuda" else "gloo")
    if target.type == "cuda":
        target = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(target)
    return World(dist.get_rank(), dist.get_world_size(), target)


def teardown(world: World) -> None:
    if world.size > 1 and dist.is_initialized():
        dist.destroy_process_group()


def all_sum(world: World, values: Tuple[float, ...]) -> Tuple[float, ...]:
    """Elementwise sums of ``values`` over the processes (float64, so counts stay exact)."""
    if world.size == 1:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=world.device)
    dist.all_reduce(tensor)
    return tuple(tensor.tolist())


def any_true(world: World, flag: bool) -> bool:
    """Whether ``flag`` is set in any process."""
    return all_sum(world, (float(flag),))[0] > 0


def gather_objects(world: World, item) -> List:
    """``item`` of every process, in rank order."""
    if world.size == 1:
        return [item]
    items: List = [None] * world.size
    dist.all_gather_object(items, item)
    return items

"""Where a run executes: the device, and under `torchrun` the process group.

The same `zoo train` runs alone or as one of WORLD_SIZE processes started by torchrun: then
each process takes its share of every epoch's shuffled images, gradients are averaged by
DistributedDataParallel (gloo on the CPU, nccl on CUDA), and only rank 0 writes files.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from zoo.errors import ZooError


def pick_device(name: str, index: int = 0) -> torch.device:
    """`auto` picks CUDA, then MPS, then the CPU; `index` is the CUDA device under torchrun."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", index)
        return torch.device("mps" if torch.backends.mps.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ZooError("--device cuda: no CUDA device is available")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ZooError("--device mps: no MPS device is available")
    if name not in ("cpu", "cuda", "mps"):
        raise ZooError(f"unknown device {name!r}; choose from auto, cpu, cuda, mps")
    return torch.device("cuda", index) if name == "cuda" else torch.device(name)


@dataclass
class Context:
    """This process's device, rank and the number of processes."""

    device: torch.device
    rank: int = 0
    world: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, order: torch.Tensor) -> torch.Tensor:
        """This rank's share of an epoch's order: padded by repeating its start so that every
        rank gets as many images (as DistributedSampler does), then every world-th one."""
        if self.world == 1:
            return order
        padding = (-len(order)) % self.world
        return torch.cat([order, order[:padding]])[self.rank :: self.world]

    def wrap(self, module: nn.Module) -> nn.Module:
        """`module` as DistributedDataParallel when there are several processes."""
        if self.world == 1:
            return module
        ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(module, device_ids=ids)

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """`values` summed over all processes."""
        if self.world > 1:
            values = values.clone()
            dist.all_reduce(values)
        return values

    def any(self, flag: bool) -> bool:
        """Whether `flag` is true in any process (every process must ask)."""
        if self.world == 1:
            return flag
        return bool(self.sum(torch.tensor([float(flag)], device=self.device)).item())

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def close(self) -> None:
        """Leave the process group; its threads end once the run's module lets it go too."""
        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def setup(device: str) -> Context:
    """The context of this process; joins torchrun's process group when WORLD_SIZE > 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Context(pick_device(device))
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    where = pick_device(device, local)
    if where.type == "cuda":
        torch.cuda.set_device(where)
    # torch._dynamo (the first optimizer imports it) holds on to a group that exists when it is
    # imported: gloo's threads would then outlive the run, and one that frees a tensor while
    # the interpreter exits aborts the process ("terminate called without an active exception").
    importlib.import_module("torch._dynamo")
    dist.init_process_group("nccl" if where.type == "cuda" else "gloo")
    return Context(where, rank, world)

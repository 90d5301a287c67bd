"""torchrun / DistributedDataParallel plumbing: NCCL on GPUs, Gloo on the CPU."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.utils.data import Sampler

from sakd.errors import SakdError


class DeviceError(SakdError):
    """A device that does not exist here."""


@dataclass(frozen=True)
class DistEnv:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")  # noqa: RUF009 - torch.device is immutable

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> the local CUDA device when there is one, else the CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError("device 'cuda' requested but torch sees no CUDA device; use --device cpu")
        return torch.device("cuda", local_rank)
    if name == "cpu":
        return torch.device("cpu")
    raise DeviceError(f"unknown device '{name}' (auto, cpu or cuda)")


def init_distributed(device: str = "auto") -> DistEnv:
    """Join the process group when started by torchrun (WORLD_SIZE > 1), else run alone."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    torch_device = resolve_device(device, local_rank)
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if torch_device.type == "cuda" else "gloo"
        if torch_device.type == "cuda":
            torch.cuda.set_device(torch_device)
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
    return DistEnv(rank, world_size, local_rank, torch_device)


def all_reduce_sum(values: list[float], env: DistEnv) -> list[float]:
    """Sum a list of numbers over all processes (float64)."""
    if not env.distributed:
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64,
                          device=env.device if env.device.type == "cuda" else "cpu")
    dist.all_reduce(tensor)
    return tensor.tolist()


def barrier(env: DistEnv) -> None:
    if env.distributed:
        dist.barrier()


class ShardSampler(Sampler[int]):
    """Evaluation sharding without padding: rank r takes indices r, r+W, r+2W, ...

    (torch's DistributedSampler pads with repeated samples, which would bias an accuracy.)
    """

    def __init__(self, length: int, rank: int, world_size: int) -> None:
        self.indices = list(range(rank, length, world_size))

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)

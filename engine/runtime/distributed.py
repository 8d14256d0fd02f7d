"""Training on many processes with torchrun: the process group, each process's share of an
epoch, and sums over processes. Started alone, a script is process 0 of 1 and none of this
costs anything."""
from __future__ import annotations

import os

import torch
import torch.distributed as dist

from .settings import resolve_device


def setup_processes(device_spec: str) -> tuple[int, int, torch.device]:
    """(rank, world size, device). Started by torchrun (which sets RANK and WORLD_SIZE), this
    joins the process group, NCCL on GPUs and gloo on CPUs; each process takes the GPU of its
    LOCAL_RANK. Started alone, it is process 0 of 1."""
    device = resolve_device(device_spec)
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return 0, 1, device
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    elif device.type != "cpu":
        raise SystemExit("distributed training runs on CUDA GPUs or on CPUs: pass --device cuda or --device cpu")
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return rank, world, device


def shard(n: int, world: int, rank: int, device: torch.device) -> torch.Tensor:
    """The positions of an epoch's order this process trains on: every world-th from `rank`,
    padded like DistributedSampler so every process takes the same number of steps."""
    from torch.utils.data import DistributedSampler

    return torch.tensor(list(DistributedSampler(range(n), num_replicas=world, rank=rank, shuffle=False)),
                        dtype=torch.long, device=device)


def all_sum(values: list, device: torch.device) -> list[float]:
    """The values (numbers or 0-d tensors) summed over all processes."""
    total = torch.stack([torch.as_tensor(v, device=device).double() for v in values])
    if dist.is_initialized():
        dist.all_reduce(total)
    return total.tolist()


def barrier(device: torch.device) -> None:
    """Wait for every process (nothing to wait for when alone)."""
    if dist.is_initialized():
        dist.barrier(device_ids=[device.index] if device.type == "cuda" else None)


def finish() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()

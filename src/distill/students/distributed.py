"""Data-parallel training when the train stage is started by `accelerate launch` (or torchrun) with N processes.

The stage runs unchanged: the launcher sets RANK / WORLD_SIZE / LOCAL_RANK, every process builds the same
student, walks the same shuffled global batches (same seed) and trains on its share of each (rows rank, rank+N,
...); DistributedDataParallel averages the gradients, so the schedule (steps, warm-up, learning rate) is the one a
single process would run. Only rank 0 writes the model and the metrics. With one process (plain `distill train`,
`accelerate launch --num_processes 1`) nothing here does anything. The launcher's --cpu and --mixed_precision
choices are honoured (`ACCELERATE_USE_CPU`, `ACCELERATE_MIXED_PRECISION`).
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator

import torch


def world() -> tuple[int, int, int]:
    """(rank, world size, local rank) from the launcher's environment; (0, 1, 0) when not launched."""
    env = os.environ
    return int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0))


def is_main() -> bool:
    return world()[0] == 0


def launcher_device(device: str) -> str:
    """The launcher's choice wins: --cpu forces the CPU; with N processes on GPUs each takes its own."""
    if os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes"):
        return "cpu"
    rank, size, local = world()
    return f"cuda:{local}" if size > 1 and device.startswith("cuda") else device


def train_device(choice: str) -> str:
    """Where the student trains and predicts: train.device resolved, then the launcher's choice applied."""
    from distill.core.devices import resolve_device

    return launcher_device(resolve_device(choice, "train.device"))


def launcher_precision(choice: str) -> str:
    """train.precision `auto` follows `accelerate launch --mixed_precision bf16|fp16`."""
    mp = os.environ.get("ACCELERATE_MIXED_PRECISION", "no").lower()
    return {"bf16": "bfloat16", "fp16": "float16"}.get(mp, choice) if choice == "auto" else choice


def shard(idx: list[int]) -> list[int]:
    """This process's rows of a global batch."""
    rank, size, _ = world()
    return idx[rank::size]


@contextlib.contextmanager
def data_parallel(module: torch.nn.Module, device: str) -> Iterator[torch.nn.Module]:
    """`module` wrapped in DistributedDataParallel for the block (process group up and down), or itself."""
    rank, size, local = world()
    if size == 1:
        yield module
        return
    import torch.distributed as dist

    started = not dist.is_initialized()
    if started:
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo", rank=rank, world_size=size)
    # the encoder's pooler is never used (mean pooling): its parameters get no gradient
    ddp = torch.nn.parallel.DistributedDataParallel(
        module, device_ids=[local] if device.startswith("cuda") else None, find_unused_parameters=True
    )
    try:
        yield ddp
    finally:
        del ddp  # the wrapper must go while its process group lives (freeing it after the group hangs in gloo)
        if started:
            dist.barrier()
            dist.destroy_process_group()


def all_sum(values: list[float], device: str) -> list[float]:
    """Sum a few numbers over the processes (per-epoch loss bookkeeping); themselves with one process."""
    if world()[1] == 1:
        return values
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()

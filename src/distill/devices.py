"""Where the models run: `device: auto | cpu | cuda` and the precision that goes with it.

`auto` is the GPU when torch sees one and the CPU otherwise, so the same params.yaml runs on a laptop and on a
GPU box; `cuda` on a machine without one is an error, not a silent CPU run. Precision `auto`: float32 on the
CPU (bf16 matmuls are slower there on most CPUs); on a GPU bfloat16 where it is supported (Ampere and newer),
else float16 for the teacher (inference only) and float32 for the student (fp16 training would need loss
scaling for little gain on a 22M-parameter encoder). Pure functions: the choice is unit-tested without a GPU.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch

from distill.io import DistillError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def cuda_available() -> bool:
    return torch.cuda.is_available()


def bf16_supported() -> bool:
    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def resolve_device(choice: str, field: str, has_cuda: bool | None = None) -> str:
    """'auto' | 'cpu' | 'cuda' | 'cuda:N' -> a torch device string."""
    has_cuda = cuda_available() if has_cuda is None else has_cuda
    if choice == "auto":
        return "cuda" if has_cuda else "cpu"
    if choice.startswith("cuda") and not has_cuda:
        raise DistillError(f"{field}: {choice} asked, but torch sees no GPU (torch {torch.__version__}; a CPU build, "
                           "or no driver): use auto or cpu, or install a CUDA build of torch (README 'Bigger runs')")
    return choice


def resolve_dtype(choice: str, device: str, training: bool, bf16: bool | None = None) -> torch.dtype:
    """'auto' | 'float32' | 'bfloat16' | 'float16' -> the dtype the model computes in on `device`."""
    if choice != "auto":
        return DTYPES[choice]
    if not device.startswith("cuda"):
        return torch.float32
    if bf16_supported() if bf16 is None else bf16:
        return torch.bfloat16
    return torch.float32 if training else torch.float16


@contextlib.contextmanager
def autocast(device: str, dtype: torch.dtype) -> Iterator[None]:
    """Mixed precision for a training step (weights and optimiser state stay float32); nothing for float32."""
    if dtype == torch.float32:
        yield
        return
    with torch.autocast(device_type=device.split(":")[0], dtype=dtype):
        yield

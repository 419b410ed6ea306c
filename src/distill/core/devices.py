"""Where the models run: `device: auto | cpu | cuda` and the precision that goes with it.

`auto` is the GPU when torch sees one and the CPU otherwise, so the same params.yaml runs on a laptop and on a
GPU box; `cuda` on a machine without one is an error, not a silent CPU run. Precision `auto`: on a GPU bfloat16
where it is supported (Ampere and newer), else float16 for the teacher (inference only) and float32 for the
student (fp16 training would need loss scaling for little gain on a 22M-parameter encoder). On the CPU the
teacher runs in bfloat16 where the CPU has bf16 instructions (AVX512-BF16 or AMX: 1.5-1.9x faster label scoring,
~1.1x generation, the same validation accuracy within noise, docs/teacher_speed.md) and in float32 elsewhere,
where bf16 matmuls are emulated and slower; the student trains in float32 on any CPU. Pure functions: the choice
is unit-tested without a GPU.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch

from distill.core.io import DistillError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def cuda_available() -> bool:
    return torch.cuda.is_available()


def bf16_supported() -> bool:
    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def cpu_bf16_native() -> bool:
    """Does this CPU compute bfloat16 in hardware? (torch's own probes; private, hence the guard.)"""
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except Exception:  # an older or newer torch without the probes: assume not
        return False


def resolve_device(choice: str, field: str, has_cuda: bool | None = None) -> str:
    """'auto' | 'cpu' | 'cuda' | 'cuda:N' -> a torch device string."""
    has_cuda = cuda_available() if has_cuda is None else has_cuda
    if choice == "auto":
        return "cuda" if has_cuda else "cpu"
    if choice.startswith("cuda") and not has_cuda:
        raise DistillError(
            f"{field}: {choice} asked, but torch sees no GPU (torch {torch.__version__}; a CPU build, "
            "or no driver): use auto or cpu, or install a CUDA build of torch (README 'Bigger runs')"
        )
    return choice


def resolve_dtype(choice: str, device: str, training: bool, bf16: bool | None = None) -> torch.dtype:
    """'auto' | 'float32' | 'bfloat16' | 'float16' -> the dtype the model computes in on `device`.
    bf16: does the device compute bfloat16 natively (None: ask it)."""
    if choice != "auto":
        return DTYPES[choice]
    cuda = device.startswith("cuda")
    native = (bf16_supported() if cuda else cpu_bf16_native()) if bf16 is None else bf16
    if native and (cuda or not training):  # the CPU trains in float32 whatever it supports
        return torch.bfloat16
    return torch.float16 if cuda and not training else torch.float32


@contextlib.contextmanager
def autocast(device: str, dtype: torch.dtype) -> Iterator[None]:
    """Mixed precision for a training step (weights and optimiser state stay float32); nothing for float32."""
    if dtype == torch.float32:
        yield
        return
    with torch.autocast(device_type=device.split(":")[0], dtype=dtype):
        yield

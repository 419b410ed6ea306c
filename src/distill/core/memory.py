"""Keep freed memory in the process instead of handing it back to the OS after every tensor (glibc only).

glibc's malloc serves a large block (above its mmap threshold) with a fresh mmap and unmaps it on free, and trims
freed memory off the top of its heap. A forward pass frees and re-allocates the same large tensors layer after layer
(the teacher's attention over its few-shot prefix: tens of MB a layer), so the OS zero-fills the same pages again and
again: 1.1 M page faults and 13 % of the CPU time in the kernel while the teacher scored 64 AG News rows (float32,
an AVX2 CPU; docs/benchmarks.md). Raising the mmap threshold to its maximum (32 MB) and the trim threshold to 2 GB
keeps those pages mapped and reused: 17 k page faults, no kernel time, bit-identical results. Peak memory stays
what the largest step needs; it is just not returned between steps. Users who set glibc's own MALLOC_* variables
keep theirs.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameter numbers (malloc.h)
MMAP_THRESHOLD_MAX = 32 << 20  # DEFAULT_MMAP_THRESHOLD_MAX on 64-bit glibc: a larger value is refused
TRIM_THRESHOLD = (1 << 31) - 1  # mallopt takes an int


def keep_freed_memory(environ=os.environ) -> bool:
    """Set glibc's mmap and trim thresholds for this process; False where there is no glibc (musl, macOS, Windows)
    or the user chose their own thresholds."""
    if any(k in environ for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018 - only glibc has it (and mallopt's parameter numbers)
    except (OSError, AttributeError):
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)) and bool(
        libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )

"""memory.keep_freed_memory: large blocks are reused instead of faulted in afresh (glibc), and a user's own
MALLOC_* settings are left alone."""

import subprocess
import sys

import pytest

from distill.core.memory import keep_freed_memory

# Blocks of 20-22 MB, each a little larger than the last: glibc's own (dynamic) threshold rule maps every one of
# them afresh and the OS zero-fills its pages; with keep_freed_memory the heap keeps and reuses them.
SCRIPT = """
import resource, sys
from distill.core.memory import keep_freed_memory
if sys.argv[1] == "on":
    assert keep_freed_memory({})
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for i in range(40):
    block = bytearray((20 << 20) + i * (64 << 10))
    del block
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, check=True).stdout
    return int(out.strip())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_freed_blocks_are_reused_not_faulted_in_again():
    off, on = faults("off"), faults("on")
    assert off > 40 * 4000  # ~5k pages a block, every block afresh
    assert on < off / 10


def test_a_users_own_malloc_settings_win():
    assert keep_freed_memory({"MALLOC_TRIM_THRESHOLD_": "0"}) is False
    assert keep_freed_memory({"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=0"}) is False

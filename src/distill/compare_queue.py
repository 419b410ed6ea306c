"""DVC's experiment queue as `distill compare` reads it: the one way compare calls `dvc` (bounded, output through
temporary files, a failure as one DistillError line), what `dvc queue status` says (workers alive, each run's
state), and how long a queue with no worker alive is waited on before its runs count as lost (DISTILL_ORPHAN_S).

What compare does with it (queueing, watching, queueing lost runs again) is compare.py's Comparison. Tests fake
DVC by patching `distill.compare_queue.dvc`: every call, compare.py's included, is looked up here.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from pathlib import Path

from distill.core.io import DistillError


def orphan_seconds(raw: str) -> float:
    """DISTILL_ORPHAN_S: seconds with no queue worker alive before runs DVC still lists are taken as lost (tests set
    it shorter). A bad value is one line from `distill compare`, not a traceback."""
    try:
        seconds = float(raw)
    except ValueError:
        seconds = float("nan")
    if not seconds > 0:
        raise DistillError(f"DISTILL_ORPHAN_S: '{raw}' is not a positive number of seconds")
    return seconds


ORPHAN_S = orphan_seconds(os.environ.get("DISTILL_ORPHAN_S", "120"))


def dvc(root: Path, *args: str, timeout: float | None = None) -> str:
    # Output goes to temporary files, not pipes: `dvc queue start` leaves workers running that inherit its output
    # handles, and reading a pipe would wait for them to finish.
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        try:
            code = subprocess.run(
                ["dvc", *args], cwd=root, stdout=out, stderr=err, stdin=subprocess.DEVNULL, timeout=timeout
            ).returncode
        except subprocess.TimeoutExpired:  # the child is killed; the caller may ask again
            raise DistillError(f"dvc {' '.join(args[:2])} gave no answer in {timeout:.0f} s") from None
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if code != 0:
        lines = [line.strip() for line in (stderr + stdout).splitlines() if line.strip()]
        why = next((line for line in lines if line.startswith("ERROR:")), lines[0] if lines else f"exit {code}")
        raise DistillError(f"dvc {' '.join(args[:3])} ...: {why}")
    return stdout


def queue_status(root: Path, timeout: float | None = None) -> tuple[int, dict[str, str]]:
    """`dvc queue status` -> (queue workers alive now, active + idle; {experiment name: its status, lower case})."""
    text = dvc(root, "queue", "status", timeout=timeout)
    m = re.search(r"Worker status: (\d+) active, (\d+) idle", text)
    listed = {}
    for line in text.splitlines():  # "d8b7ba1  c-sst2-llkd-s0  08:35 AM  Running"
        parts = line.split()
        if len(parts) >= 4 and parts[-1] in ("Queued", "Running", "Success", "Failed"):
            listed[parts[1]] = parts[-1].lower()
    return (int(m.group(1)) + int(m.group(2)) if m else 0), listed


def workers(root: Path, timeout: float | None = None) -> int:
    """Queue workers alive now (active + idle)."""
    return queue_status(root, timeout)[0]


def queue_seen(root: Path) -> tuple[int, dict[str, str]]:
    """queue_status for the recovery rules: an unanswered or unreadable `dvc queue status` counts as a worker alive
    and lists nothing, so nothing is reset on a guess."""
    try:
        return queue_status(root, timeout=60)
    except DistillError:
        return 1, {}


def workers_alive(root: Path) -> bool:
    """Whether the queue still has a worker; an unanswered or unreadable `dvc queue status` counts as yes."""
    return queue_seen(root)[0] > 0

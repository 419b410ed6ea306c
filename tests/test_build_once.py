"""build_once: a model folder (converted weights, a fitted SetFit prior) built by one process and shared, whole,
with every other; a build killed outright leaves nothing behind that the next one keeps."""

import os
from pathlib import Path


def _build(dest: str, log: str, me: int) -> None:
    import time

    from distill.core.io import build_once

    Path(f"{log}.arrived{me}").touch()
    with build_once(dest) as tmp:
        if tmp is not None:
            with open(log, "a") as f:
                f.write("built\n")
            deadline = time.time() + 30  # build on until the other process has arrived, so it must wait for the lock
            while not Path(f"{log}.arrived{1 - me}").exists() and time.time() < deadline:
                time.sleep(0.05)
            time.sleep(0.3)
            (tmp / "config.json").write_text("{}")
    assert (Path(dest) / "config.json").is_file()  # whoever built it, it is whole when either returns


def test_build_once_builds_one_folder_for_concurrent_processes(tmp_path):
    """Two experiments (`dvc queue start -j 2`) converting the same weights: one builds, the other waits and reuses."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_build, args=(str(tmp_path / "model"), str(tmp_path / "log"), i)) for i in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    assert (tmp_path / "log").read_text() == "built\n"


def _build_and_die(dest: str) -> None:
    import signal

    from distill.core.io import build_once

    with build_once(dest) as tmp:
        (tmp / "half.bin").write_bytes(b"x" * 1000)
        os.kill(os.getpid(), signal.SIGKILL)  # no finally runs: the temporary folder stays behind


def test_a_build_killed_outright_leaves_nothing_the_next_build_keeps(tmp_path):
    """A SetFit prior fit or a weight conversion killed with SIGKILL: the next build under the lock clears its
    half-filled folder, and only its own (another folder's temporary one is not touched)."""
    import multiprocessing

    from distill.core.io import build_once

    dest = tmp_path / "model"
    proc = multiprocessing.get_context("spawn").Process(target=_build_and_die, args=(str(dest),))
    proc.start()
    proc.join(60)
    assert proc.exitcode == -9
    assert len(list(tmp_path.glob(".model.*.tmp"))) == 1
    other = tmp_path / ".model.v2.abcdefgh.tmp"  # a folder named model.v2 being built
    other.mkdir()
    with build_once(dest) as tmp:
        (tmp / "config.json").write_text("{}")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")) == [other.name]
    assert (dest / "config.json").is_file()

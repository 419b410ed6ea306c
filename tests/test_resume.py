"""kill -9 during `distill generate` loses at most the batch in flight; the re-run repeats no call and
writes the same file as an uninterrupted run (real process, real local backend on a tiny model)."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

from conftest import write_params


def rows_in_cache(path) -> int:
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(path, timeout=1) as db:
            return db.execute("SELECT COUNT(*) FROM answers").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def generate(cwd, toy_task, **popen):
    cmd = [
        sys.executable,
        "-m",
        "distill.cli",
        "generate",
        "--task-dir",
        str(toy_task),
        "--prompts",
        "prompts.jsonl",
        "--out",
        "gen.jsonl",
        "--metrics",
        "m.json",
    ]
    return subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **popen)


def test_kill_minus_9_then_resume(tmp_path, toy_task, peaked_llm):
    runs = {}
    for name in ("killed", "clean"):
        d = tmp_path / name
        d.mkdir()
        write_params(
            d / "params.yaml",
            task="toy",
            method="zerogen",
            teacher={"model": str(peaked_llm), "batch_size": 2},
            generate={"n_per_label": 25, "max_new_tokens": 24, "label_filter": "none", "min_words": 1},
        )
        subprocess.run(
            [sys.executable, "-m", "distill.cli", "prompts", "--task-dir", str(toy_task), "--out", "prompts.jsonl"],
            cwd=d,
            check=True,
            capture_output=True,
        )
        runs[name] = d

    killed, cache = runs["killed"], runs["killed"] / ".cache" / "llm.sqlite"
    proc = generate(killed, toy_task)
    deadline = time.time() + 120
    while rows_in_cache(cache) < 4 and time.time() < deadline:  # at least two batches of 2 answered
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = rows_in_cache(cache)
    assert 4 <= before < 50, "the kill should land mid-run"
    assert not (killed / "gen.jsonl").exists()  # no half-written output

    assert generate(killed, toy_task).wait() == 0
    m = json.loads((killed / "m.json").read_text())
    assert m["llm.cache_hits"] == before and m["llm.calls"] == 50 - before  # nothing asked twice

    assert generate(runs["clean"], toy_task).wait() == 0
    assert (killed / "gen.jsonl").read_text() == (runs["clean"] / "gen.jsonl").read_text()

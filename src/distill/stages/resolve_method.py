"""Stage `resolve_method`: which method this run's stages execute (`method: auto` resolved for the task, after the
teacher check's verdict), and a hash of that method's code, written to data/work/method.json.

Why a stage: the shared stages (assemble, train, evaluate, register) run the hooks of whichever method params.yaml
names. Depending on every method's folder in dvc.yaml would re-train the student when any method's code changes;
depending on this file re-runs them exactly when the running method, or its code, changes. It depends on the whole of
methods/ and costs a second.
"""

from __future__ import annotations

from pathlib import Path

from distill.core.io import write_json
from distill.methods.auto import resolve
from distill.methods.base import source_files, source_sha256

SRC = Path(__file__).resolve().parents[1]  # src/distill


def run(params, task_dir: str, out: str) -> None:
    method = resolve(params, task_dir).method
    sha = source_sha256(method)
    write_json(
        out,
        {
            "method": method,
            "as_written": params.method,
            "source_sha256": sha,
            "source_files": [p.relative_to(SRC).as_posix() for p in source_files(method)],
        },
    )
    print(f"resolve_method: {params.method} -> {method} (code {sha[:12]})")

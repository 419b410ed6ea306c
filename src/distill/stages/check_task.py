"""Stage `check_task`: read and check every split of the task folder, resolve its spec (task.yaml, or inferred
when the folder has none) and write it to data/work/task.yaml.

Every LLM stage depends on that file, so DVC runs this first: a malformed or missing split stops the pipeline
before any LLM call, and a folder without task.yaml runs under DVC (no stage depends on a file that is absent).
Split rows that repeat a test row, and repeated ids, are warnings (stderr and the metrics), not errors: a
published dataset can have them, and the run goes on (assemble keeps test copies out of training).
"""

from __future__ import annotations

import sys

import yaml

from distill.config import Params
from distill.core.io import atomic_path, write_json
from distill.core.leakage import split_report, warnings
from distill.core.tasks import load_task


def run(params: Params, task_dir: str, out: str, metrics_out: str) -> None:
    task = load_task(task_dir)
    splits = task.load_all()
    report = split_report(task.spec, splits)
    header = "# The resolved task spec (written by the check_task stage; edit data/tasks/<task>/task.yaml instead)\n"
    with atomic_path(out) as tmp:
        spec = yaml.safe_dump(task.spec.model_dump(), sort_keys=False, allow_unicode=True)
        tmp.write_text(header + spec, encoding="utf-8")
    write_json(metrics_out, {**{f"rows.{split}": len(rows) for split, rows in splits.items()}, **report})
    for line in warnings(report):
        print(f"check_task: warning: {task.root}: {line}", file=sys.stderr)
    counts = ", ".join(f"{len(rows)} {split}" for split, rows in splits.items())
    print(f"check_task: {task.name}: {counts} rows checked")

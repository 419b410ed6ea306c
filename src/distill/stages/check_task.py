"""Stage `check_task`: read and check every split of the task folder, resolve its spec (task.yaml, or inferred
when the folder has none) and write it to data/work/task.yaml.

Every LLM stage depends on that file, so DVC runs this first: a malformed or missing split stops the pipeline
before any LLM call, and a folder without task.yaml runs under DVC (no stage depends on a file that is absent).
"""
from __future__ import annotations

import yaml

from distill.config import Params
from distill.io import atomic_path, write_json
from distill.tasks import load_task


def run(params: Params, task_dir: str, out: str, metrics_out: str) -> None:
    task = load_task(task_dir)
    counts = task.check()
    with atomic_path(out) as tmp:
        tmp.write_text("# The resolved task spec (written by the check_task stage; edit data/tasks/<task>/task.yaml instead)\n"
                       + yaml.safe_dump(task.spec.model_dump(), sort_keys=False, allow_unicode=True), encoding="utf-8")
    write_json(metrics_out, {f"rows.{split}": n for split, n in counts.items()})
    print(f"check_task: {task.name}: {', '.join(f'{n} {split}' for split, n in counts.items())} rows checked")

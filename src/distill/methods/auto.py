"""`method: auto`: which method a task gets when params.yaml does not name one.

A module of its own so that every stage reading `method` can depend on exactly this rule in dvc.yaml: change the
rule and the stages whose method it changes re-run (tests/test_dvc_contract.py checks the dependency).
"""

from __future__ import annotations

from pathlib import Path


def resolve(params, task_dir: str | Path):
    """`method: auto` made concrete for a task: llkd where the task is classification and has unlabelled text, zerogen
    otherwise. Why: the teacher's labels on real text gave the best validation accuracy of the measured methods on
    SST-2 and the best after S3 (whose validation is inflated by the split it mines) on AG News (docs/benchmarks.md);
    on SVAMP (seq2seq) a teacher that cannot solve the problems has nothing to pseudo-label, and ZeroGen's
    written-around-an-equation examples win. Params with a concrete method come back unchanged."""
    if params.method != "auto":
        return params
    from distill.tasks import load_task

    task = load_task(task_dir, quiet=True)
    pool = task.path("unlabeled")
    has_pool = False
    if pool.is_file():
        with pool.open(encoding="utf-8", errors="replace") as f:
            has_pool = any(line.strip() for line in f)
    return params.model_copy(update={"method": "llkd" if has_pool and not task.spec.seq2seq else "zerogen"})

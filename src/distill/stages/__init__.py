"""One module per DVC stage: read the inputs named in dvc.yaml, call library code, write outputs atomically."""

from __future__ import annotations

import random


def inactive(params, *methods: str) -> bool:
    """All methods share one dvc.yaml; a method's own stages do nothing (and say so) under another method."""
    if params.method in methods:
        return False
    print(f"skipped: this stage belongs to method {'/'.join(methods)}; this run's method is '{params.method}'")
    return True


def checked_task(task_dir: str):
    """The task with every split read and checked: LLM stages start with this, so bad input costs no LLM call."""
    from distill.core.tasks import load_task

    task = load_task(task_dir)
    task.check()
    return task


def demos_per_prompt(params, spec) -> int:
    """Real examples shown in each generation prompt: the task.yaml's own number wins over prompts.demos_per_prompt."""
    configured = params.prompts.demos_per_prompt  # read either way: the stage declares it (tests/test_dvc_contract.py)
    return configured if spec.demos_per_prompt is None else spec.demos_per_prompt


def capped(rows: list[dict], cap: int | None) -> list[dict]:
    """At most `cap` rows, a uniform sample in file order (the same rows for every seed and method, so teacher
    baselines compare): the first rows of a file sorted by label would measure one label."""
    if not cap or len(rows) <= cap:
        return rows
    return [rows[i] for i in sorted(random.Random(0).sample(range(len(rows)), cap))]

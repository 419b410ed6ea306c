"""What every stage command shares (cli.py and each method's methods/<name>/cli.py): the params and task options,
and the params as a stage reads them."""

from __future__ import annotations

import os

import click

PARAMS = click.option(
    "--params", "params_path", default="params.yaml", show_default=True, help="params file (validated)"
)
TASK = click.option("--task-dir", required=True, help="task folder: task.yaml + JSONL splits")
METRICS = click.option("--metrics", "metrics_out", required=True, help="stage metrics JSON to write")


def stage_params(path: str, task_dir: str | None = None):
    """The validated params, `method: auto` resolved for the task (its folder, else data/tasks/<task>)."""
    from distill.config import load_params
    from distill.methods.auto import resolve

    params = load_params(path)
    return resolve(params, task_dir or os.path.join("data", "tasks", params.task))

"""`pool_random`'s stage command: `distill pool-random`."""

from __future__ import annotations

import click

from distill.cli_common import METRICS, PARAMS, TASK, stage_params


@click.command("pool-random", help="pool_random: the teacher labels a random subset of the unlabelled pool.")
@PARAMS
@TASK
@click.option("--out", required=True, help="labelled JSONL to write")
@METRICS
def pool_random(params_path, task_dir, out, metrics_out):
    from distill.methods.pool_random import stage

    stage.run(stage_params(params_path, task_dir), task_dir, out, metrics_out)


COMMANDS = [pool_random]

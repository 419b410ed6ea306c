"""GOLD's stage commands: `distill gold-start`, `distill gold-iter`."""

from __future__ import annotations

import click

from distill.cli_common import METRICS, PARAMS, TASK, stage_params


@click.command("gold-start", help="GOLD iteration 0: an empty data set and no feedback.")
@PARAMS
@click.option("--out", required=True, help="iteration-0 folder to write")
def gold_start(params_path, out):
    from distill.methods.gold import start as stage

    stage.run(out)


@click.command(
    "gold-iter", help="One GOLD iteration: generate with feedback, refresh the student, energy-score, pick feedback."
)
@PARAMS
@TASK
@click.option("--iteration", type=int, required=True, help="iteration number k (1, 2, ...)")
@click.option("--prev", "prev_dir", required=True, help="folder of iteration k-1")
@click.option("--out", required=True, help="folder of iteration k to write")
@METRICS
def gold_iter(params_path, task_dir, iteration, prev_dir, out, metrics_out):
    from distill.methods.gold import stages as stage

    stage.iterate(stage_params(params_path, task_dir), task_dir, iteration, prev_dir, out, metrics_out)


COMMANDS = [gold_start, gold_iter]

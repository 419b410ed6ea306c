"""S3's stage commands: `distill s3-seed`, `distill s3-round`."""

from __future__ import annotations

import click

from distill.cli_common import METRICS, PARAMS, TASK, stage_params


@click.command("s3-seed", help="S3: rationales per label, then rationale-conditioned seed data.")
@PARAMS
@TASK
@click.option("--out", required=True, help="round-0 folder to write")
@METRICS
def s3_seed(params_path, task_dir, out, metrics_out):
    from distill.methods.s3 import stages as stage

    stage.seed(stage_params(params_path, task_dir), task_dir, out, metrics_out)


@click.command("s3-round", help="S3 round: fresh student, its validation errors, one extrapolated example per error.")
@PARAMS
@TASK
@click.option("--round", "k", type=int, required=True, help="round number k (1, 2, ...)")
@click.option("--prev", "prev_dir", required=True, help="folder of round k-1")
@click.option("--out", required=True, help="folder of round k to write")
@METRICS
def s3_round(params_path, task_dir, k, prev_dir, out, metrics_out):
    from distill.methods.s3 import stages as stage

    stage.round_(stage_params(params_path, task_dir), task_dir, k, prev_dir, out, metrics_out)


COMMANDS = [s3_seed, s3_round]

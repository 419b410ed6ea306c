"""ZeroGen's stage commands: `distill prompts`, `distill generate`."""

from __future__ import annotations

import click

from distill.cli_common import METRICS, PARAMS, TASK, stage_params


@click.command(help="Write one generation request per sample (label-conditioned prompts, stable ids and seeds).")
@PARAMS
@TASK
@click.option("--out", required=True, help="prompts JSONL to write")
def prompts(params_path, task_dir, out):
    from distill.methods.zerogen import prompts as stage

    stage.run(stage_params(params_path, task_dir), task_dir, out)


@click.command(help="Sample the teacher for every request; cut, filter and label-check the samples.")
@PARAMS
@TASK
@click.option("--prompts", "prompts_path", required=True, help="prompts JSONL from the prompts stage")
@click.option("--out", required=True, help="generated JSONL to write")
@METRICS
def generate(params_path, task_dir, prompts_path, out, metrics_out):
    from distill.methods.zerogen import generate as stage

    stage.run(stage_params(params_path, task_dir), task_dir, prompts_path, out, metrics_out)


COMMANDS = [prompts, generate]

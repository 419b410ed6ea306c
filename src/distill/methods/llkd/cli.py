"""LLKD's stage command: `distill llkd-label`."""

from __future__ import annotations

import click

from distill.cli_common import METRICS, PARAMS, TASK, stage_params


@click.command(
    "llkd-label",
    help="LLKD: the teacher pseudo-labels the unlabelled pool (label probabilities and "
    "confidence; seq2seq: sampled solutions, the majority's vote share).",
)
@PARAMS
@TASK
@click.option("--out", required=True, help="pseudo-labelled JSONL to write")
@METRICS
def llkd_label(params_path, task_dir, out, metrics_out):
    from distill.methods.llkd import stages as stage

    stage.run(stage_params(params_path, task_dir), task_dir, out, metrics_out)


COMMANDS = [llkd_label]

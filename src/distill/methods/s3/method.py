"""S3 (Wang et al. 2023, Synthesis Step by Step): seed data, a student, its errors on a part of validation.jsonl,
extrapolated examples from those errors, repeat (stages `s3_seed`, `s3_round`)."""

from __future__ import annotations

from pathlib import Path

from distill.methods.base import Method, TrainingSet, iterative_set
from distill.methods.s3.params import S3Params


def training_set(params, task, s3_dir: Path) -> TrainingSet:
    return iterative_set(s3_dir, "round", params.s3.rounds)[1]


def judged_validation(params, fields, validation):
    """S3 mines a fixed part of validation.jsonl for errors: its runs are judged on the rest."""
    from distill.methods.s3.algorithm import error_split

    return error_split(validation, fields, params.s3.error_fraction)[1]


METHOD = Method("s3", training_set, S3Params, judged_validation=judged_validation, commands="distill.methods.s3.cli")

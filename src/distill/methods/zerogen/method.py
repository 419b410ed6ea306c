"""ZeroGen (Ye et al. 2022): the teacher writes labelled examples from label-conditioned prompts (stages `prompts`,
`generate`; the prompt format is prompting/generation.py, shared with GOLD and S3)."""

from __future__ import annotations

from pathlib import Path

from distill.core.io import read_jsonl
from distill.methods.base import Method, TrainingSet


def training_set(params, task, generated: Path) -> TrainingSet:
    return TrainingSet(read_jsonl(generated), generated, [])


def labeller(params, spec, fewshot, rows, teacher_probs):
    """The teacher's label check (`generate.label_filter`) kept the samples; unchecked, the labels are the prompts'."""
    return None if params.generate.label_filter == "none" else teacher_probs


METHOD = Method("zerogen", training_set, labeller=labeller, commands="distill.methods.zerogen.cli")

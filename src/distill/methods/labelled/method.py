"""`labelled`: the human-label reference. Real labelled rows only, no teacher at all: what a user gets from the labels
alone. It has no stage of its own."""

from __future__ import annotations

from distill.methods.base import Method, TrainingSet
from distill.methods.labelled.params import LabelledParams


def training_set(params, task, path) -> TrainingSet:
    rows = [{**r, "source": "gold", "round": 0} for split in params.labelled.splits for r in task.load(split)]
    return TrainingSet(rows, task.root, [])


def judged_validation(params, fields, validation):
    """Trained on validation.jsonl: nothing left to judge it on (no val_* metrics, never @champion)."""
    return [] if "validation" in params.labelled.splits else validation


def labeller(params, spec, fewshot, rows, teacher_probs):
    return None  # real labels


METHOD = Method(
    "labelled", training_set, LabelledParams, judged_validation=judged_validation, labeller=labeller, reads_output=False
)

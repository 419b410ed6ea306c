"""What the shared stages see of `pool_random`: its rows are the training set; the teacher is its labeller."""

from __future__ import annotations

from pathlib import Path

from distill.core.io import read_jsonl
from distill.methods.base import Method, TrainingSet
from distill.methods.pool_random.params import PoolRandomParams


def training_set(params, task, labelled: Path) -> TrainingSet:
    return TrainingSet(read_jsonl(labelled), labelled, [])


METHOD = Method(
    "pool_random", training_set, PoolRandomParams, commands="distill.methods.pool_random.cli", kinds=("classification",)
)

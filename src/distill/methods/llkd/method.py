"""LLKD (Li et al. 2024, Learning with Less): the teacher pseudo-labels an unlabelled pool (stage `llkd_label`);
training keeps, online, the rows where the teacher is confident and the student uncertain."""

from __future__ import annotations

from pathlib import Path

from distill.io import read_jsonl
from distill.methods.base import Method, TrainingSet
from distill.methods.llkd.params import LLKDParams


def training_set(params, task, pseudo: Path) -> TrainingSet:
    return TrainingSet(read_jsonl(pseudo), pseudo, [])  # every pseudo-label: LLKD selects online, in training


def selector(params, rows, spec):
    """Online selection: teacher confident AND student uncertain (adaptive per-class thresholds; seq2seq: one class)."""
    from distill.methods.llkd.algorithm import Selector

    for r in rows:  # a seq2seq task is one class: its rows have no label
        r["yhat"], r["confidence"] = 0 if spec.seq2seq else spec.label_id(r["label"]), r["meta"]["confidence"]
    lp = params.llkd
    return Selector(
        rows,
        1 if spec.seq2seq else len(spec.labels),
        lp.selection,
        lp.momentum,
        lp.weighting,
        lp.fraction,
        params.seed,
        votes=lp.votes if spec.seq2seq else None,
    )


def train_config(params):
    """LLKD selects where the student is uncertain: its student starts from a random head, as in the paper (a head
    probed on the pseudo-labels would start confident everywhere and select nothing)."""
    if params.llkd.selection in ("adaptive", "student_entropy"):
        return params.train.model_copy(update={"head_init": "random"})
    return params.train


def labeller(params, spec, fewshot, rows, teacher_probs):
    """The teacher's distribution times the few-shot prior, as llkd_label labels the pool (the probe is fitted again:
    deterministic for a seed, so the same probe)."""
    import torch

    from distill.methods.llkd.algorithm import with_prior
    from distill.students.prior import fewshot_probe

    prior = fewshot_probe(params, spec, fewshot, rows)
    if prior is None:
        return teacher_probs
    return with_prior(torch.tensor(teacher_probs), prior, params.llkd.prior_weight).tolist()


METHOD = Method(
    "llkd",
    training_set,
    LLKDParams,
    selector=selector,
    train_config=train_config,
    labeller=labeller,
    commands="distill.methods.llkd.cli",
)

"""LLKD (Li et al. 2024, Learning with Less): the teacher pseudo-labels an unlabelled pool (stage `llkd_label`);
training keeps, online, the rows where the teacher is confident and the student uncertain."""

from __future__ import annotations

from pathlib import Path

from distill.core.io import read_jsonl
from distill.methods.base import Method, TrainingSet
from distill.methods.llkd.params import LLKDParams


def training_set(params, task, pseudo: Path) -> TrainingSet:
    return TrainingSet(read_jsonl(pseudo), pseudo, [])  # every pseudo-label: LLKD selects online, in training


def selector(params, rows, spec):
    """Online selection: teacher confident AND student uncertain (adaptive per-class thresholds; seq2seq: one class)."""
    from distill.kinds import kind_of
    from distill.methods.llkd.algorithm import Selector

    kind = kind_of(spec)
    for r in rows:
        r["yhat"], r["confidence"] = kind.class_id(spec, r), r["meta"]["confidence"]
    lp = params.llkd
    return Selector(
        rows,
        kind.classes(spec),
        lp.selection,
        lp.momentum,
        lp.weighting,
        lp.fraction,
        params.seed,
        votes=lp.votes if kind.generative else None,  # confidence: the teacher's vote share; the student's: token NLL
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

"""LLKD's params.yaml section `llkd:`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from distill.core.sections import Section


class LLKDParams(Section):
    pool_size: int | None = Field(
        2500,
        gt=0,
        description="rows of unlabeled.jsonl the teacher pseudo-labels (None = all; on 2 cores ~0.1 s per row, "
        "a seq2seq row's 4 sampled solutions ~4-7 s)",
    )
    pool_chars: int = Field(
        300_000,
        ge=0,
        description="and at most this many characters of text in all, each field capped at "
        "teacher.max_text_chars as in the teacher's prompt (0 = no limit): a compute budget, since the teacher, the prior's "
        "encoder and the student cost per token; 2500 SST-2 rows are ~260k characters, AG News reaches "
        "it at ~1270 rows, RTE pairs at ~940",
    )
    selection: Literal["adaptive", "all", "teacher_topk", "student_entropy", "random"] = Field(
        "adaptive",
        description="adaptive: LLKD (teacher confident AND student uncertain, adaptive per-class thresholds); "
        "baselines: all pseudo-labels, teacher_topk, student_entropy only, random subset",
    )
    momentum: float = Field(0.9, ge=0, lt=1, description="EMA momentum of the thresholds (per training batch)")
    weighting: bool = Field(
        True, description="weight selected samples by teacher confidence x normalised student entropy"
    )
    fraction: float = Field(
        0.25, gt=0, le=1, description="share of the pool kept by the teacher_topk and random baselines"
    )
    votes: int = Field(
        4,
        ge=1,
        description="seq2seq tasks: solutions the teacher samples per problem; its confidence is the "
        "share that reach the majority answer (self-consistency); 1 = one greedy solution, confidence 1",
    )
    temperature: float = Field(
        0.7, gt=0, description="seq2seq tasks: sampling temperature of those solutions (votes > 1)"
    )
    fewshot_prior: Literal["probe", "setfit", "none"] = Field(
        "probe",
        description="classification: multiply the teacher's label distribution on each pool row by what the task's "
        "labelled fewshot.jsonl alone gives (a product of experts): probe = a linear probe on frozen embeddings "
        "(llkd.prior_model, seconds); setfit = SetFit on llkd.prior_model (contrastive pairs, then a "
        "logistic-regression head; train.setfit_* settings; minutes); none = the teacher's alone, as in the paper",
    )
    prior_weight: float = Field(
        1.5, ge=0, description="exponent of the prior's distribution (probe or SetFit) in that product (0 = off)"
    )
    prior_c: float = Field(
        3.0,
        gt=0,
        description="inverse L2 strength of the probe (scikit-learn's C: the penalty is "
        "|W|^2 / (2 C n) over n fewshot rows); small = a soft probe that moves few labels",
    )
    prior_model: str = Field(
        "mpnet-base",
        description="the probe's frozen encoder: mpnet-base (all-mpnet-base-v2: a "
        "better probe than MiniLM's on SST-2, docs/benchmarks.md) | minilm-l6 | student (train.model's) | a "
        "model folder; only the pseudo-labels change, the student stays train.model",
    )

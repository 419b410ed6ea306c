"""LLKD (Li et al. 2024, "Learning with Less"): selective distillation from a pseudo-labelled pool.

Per training batch keep the samples where the teacher is confident AND the student is uncertain, with
thresholds that adapt: a global exponential moving average (EMA) of teacher confidence / student entropy,
scaled per class by that class's own EMA relative to the largest one (FreeMatch-style). Kept samples are
weighted by confidence x normalised entropy. The exact equations are not public: this is the
reconstruction of methods.md §5.4, and every knob is a param.

seq2seq tasks have one "class" (K = 1): the teacher's confidence is its self-consistency vote share (methods/llkd/stages.py)
and the student's uncertainty on a row is 1 - exp(-NLL), one minus the geometric-mean probability it gives the
teacher's solution tokens (its forward pass returns that mean token NLL). Both lie in [0, 1], so the thresholds start
at the least possible vote share and at half the largest uncertainty, as the classifier's start at chance confidence
and half the largest entropy.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace

import torch


@dataclass(frozen=True)
class Thresholds:
    tau_t: float  # global EMA of teacher confidence
    tau_s: float  # global EMA of student entropy
    m_t: tuple[float, ...]  # per-class EMA of teacher confidence
    m_s: tuple[float, ...]  # per-class EMA of student entropy

    def per_class(self) -> tuple[list[float], list[float]]:
        """Class-wise thresholds: the global level scaled by each class's EMA relative to the largest.

        A class whose teacher confidence runs low gets a proportionally lower teacher threshold, so it is
        not starved of samples (the class-wise adjustment)."""
        top_t, top_s = max(self.m_t), max(self.m_s)
        return (
            [self.tau_t * m / top_t if top_t > 0 else self.tau_t for m in self.m_t],
            [self.tau_s * m / top_s if top_s > 0 else self.tau_s for m in self.m_s],
        )


def pool_cut(lengths: list[int], max_rows: int | None, max_chars: int) -> int:
    """How many rows of the shuffled pool (their text lengths in characters, in order) the teacher labels: the first
    rows up to `max_rows` rows and `max_chars` characters in all (None / 0: no limit), and at least one. The teacher,
    the prior's encoder and the student all cost per token, so a character budget keeps a run's cost the same on a
    task of long rows as on one of short rows, where a row count alone would not."""
    n = min(len(lengths), max_rows or len(lengths))
    if not max_chars:
        return n
    total = 0
    for i, length in enumerate(lengths[:n]):
        total += length
        if total > max_chars:
            return max(i, 1)
    return n


def init_thresholds(k: int, tau_t: float | None = None, tau_s: float | None = None) -> Thresholds:
    """Classes: tau_T = 1/K (chance confidence); tau_S = log(K)/2 (half the maximal entropy). Or the given levels."""
    tau_t = 1.0 / k if tau_t is None else tau_t
    tau_s = math.log(k) / 2 if tau_s is None else tau_s
    return Thresholds(tau_t, tau_s, (tau_t,) * k, (tau_s,) * k)


def entropy(probs: torch.Tensor) -> torch.Tensor:
    return -(probs * probs.clamp(min=1e-12).log()).sum(-1)


def sequence_uncertainty(nll: torch.Tensor) -> torch.Tensor:
    """1 - exp(-mean token NLL): 0 when the student is sure of every token of the target, -> 1 when it is lost."""
    return 1.0 - torch.exp(-nll.clamp(min=0.0))


def update(th: Thresholds, conf: torch.Tensor, ent: torch.Tensor, yhat: torch.Tensor, momentum: float) -> Thresholds:
    """One EMA step on a batch: globals on the batch means, each present class on its own means."""
    lam = momentum
    m_t, m_s = list(th.m_t), list(th.m_s)
    for y in yhat.unique().tolist():
        sel = yhat == y
        m_t[y] = lam * m_t[y] + (1 - lam) * float(conf[sel].mean())
        m_s[y] = lam * m_s[y] + (1 - lam) * float(ent[sel].mean())
    return replace(
        th,
        tau_t=lam * th.tau_t + (1 - lam) * float(conf.mean()),
        tau_s=lam * th.tau_s + (1 - lam) * float(ent.mean()),
        m_t=tuple(m_t),
        m_s=tuple(m_s),
    )


def select(
    th: Thresholds,
    conf: torch.Tensor,
    ent: torch.Tensor,
    yhat: torch.Tensor,
    use_teacher: bool = True,
    use_student: bool = True,
) -> torch.Tensor:
    """Boolean mask: teacher confidence >= its class threshold and student entropy >= its class threshold.
    The thresholds are float32 means: a row equal to its batch's mean must pass, so ">=" allows the mean's rounding."""
    t_cls, s_cls = (torch.tensor(x) - 1e-6 for x in th.per_class())
    keep = torch.ones_like(conf, dtype=torch.bool)
    if use_teacher:
        keep &= conf >= t_cls[yhat]
    if use_student:
        keep &= ent >= s_cls[yhat]
    return keep


def weights(conf: torch.Tensor, ent: torch.Tensor, keep: torch.Tensor, top: float) -> torch.Tensor:
    """w = c * u / u_max on kept samples (both factors in [0, 1]; u_max = log K for an entropy); 0 elsewhere."""
    return torch.where(keep, conf * ent / top, torch.zeros_like(conf))


class Selector:
    """Online selection inside the training loop (the glue around the pure functions above).

    mode: adaptive (LLKD: teacher AND student thresholds) | student_entropy (student threshold only) |
    teacher_topk (the `fraction` most confident pseudo-labels, fixed) | random (a fixed random `fraction`) |
    all (every pseudo-label). Rows carry `yhat` (label id) and `confidence` (the teacher's).
    votes: seq2seq (K = 1): the student's output per row is its mean token NLL, and `votes` the teacher's samples
    per problem (the least vote share 1/votes is where the confidence threshold starts).
    """

    def __init__(
        self,
        rows: list[dict],
        k: int,
        mode: str,
        momentum: float,
        weighting: bool,
        fraction: float,
        seed: int,
        votes: int | None = None,
    ):
        self.mode, self.momentum, self.weighting = mode, momentum, weighting
        self.sequence = votes is not None
        self.th = init_thresholds(1, 1.0 / votes, 0.5) if self.sequence else init_thresholds(k)
        self.top = 1.0 if self.sequence else math.log(k)  # the largest uncertainty
        self.fixed: set[str] = set()
        if mode == "teacher_topk":
            ranked = sorted(rows, key=lambda r: r["confidence"], reverse=True)
            self.fixed = {r["id"] for r in ranked[: int(round(fraction * len(rows)))]}
        elif mode == "random":
            self.fixed = {r["id"] for r in random.Random(seed).sample(rows, int(round(fraction * len(rows))))}
        self.ever: set[str] = set()
        self.n_rows = len(rows)
        self.seen = self.kept = 0

    @property
    def needs_logits(self) -> bool:
        """Only the student-entropy rules read the student's outputs; the fixed ones let training skip that pass."""
        return self.mode in ("adaptive", "student_entropy")

    def __call__(self, batch: list[dict], logits: torch.Tensor | None) -> torch.Tensor:
        conf = torch.tensor([float(r["confidence"]) for r in batch])
        yhat = torch.tensor([int(r["yhat"]) for r in batch])
        if self.needs_logits:
            ent = sequence_uncertainty(logits.float()) if self.sequence else entropy(logits.float().softmax(-1))
            self.th = update(self.th, conf, ent, yhat, self.momentum)
            keep = select(self.th, conf, ent, yhat, use_teacher=self.mode == "adaptive")
        elif self.mode == "all":
            keep = torch.ones(len(batch), dtype=torch.bool)
        else:
            keep = torch.tensor([r["id"] in self.fixed for r in batch])
        self.seen += len(batch)
        self.kept += int(keep.sum())
        self.ever.update(r["id"] for r, k in zip(batch, keep.tolist()) if k)
        if self.weighting and self.mode == "adaptive":
            return weights(conf, ent, keep, self.top)
        return keep.float()

    def epoch_stats(self) -> dict[str, float]:
        t_cls, s_cls = self.th.per_class()
        stats = {
            "selected_fraction": self.kept / max(self.seen, 1),
            "distinct_selected_fraction": len(self.ever) / max(self.n_rows, 1),
            **{f"tau_teacher.{i}": t for i, t in enumerate(t_cls)},
            **{f"tau_student.{i}": s for i, s in enumerate(s_cls)},
        }
        self.seen = self.kept = 0
        return stats


def with_prior(teacher: torch.Tensor, prior: torch.Tensor, weight: float) -> torch.Tensor:
    """The teacher's label distribution times a prior raised to `weight`, renormalised (a product of experts):
    p(y|x) ∝ p_T(y|x) · p_P(y|x)^weight. A uniform prior, or weight 0, leaves the teacher's distribution as it is;
    where the two agree the label gets more confident, where they disagree the surer one wins."""
    logp = teacher.clamp(min=1e-12).log() + weight * prior.clamp(min=1e-12).log()
    return logp.softmax(-1)

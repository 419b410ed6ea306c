"""GOLD (Gholami et al. 2024): OOD-guided generation. Pure functions only (methods.md §2).

- energy: the free energy of the student's logits, E(x) = -T * logsumexp(logits / T) (Liu et al. 2020).
  Sign: lower = in-distribution (confident), higher = more out-of-distribution.
- band: the feedback rule of the released code — sort the validation block by energy and keep the
  upper-middle band [ood_lo, ood_hi) (the single most-OOD samples are skipped: most likely noise).
- sce_loss: symmetric cross-entropy (Wang et al. 2019), GOLD's noise-robust loss for the final student.
"""

from __future__ import annotations

import math
import random

import torch
import torch.nn.functional as F

from distill.core.energy import energy, sequence_energy  # noqa: F401 - GOLD's score, kept below methods/ and students/
from distill.prompting.generation import generation_messages, make_request
from distill.core.tasks import TaskSpec

VAL_INSTRUCTION = "The new text must be significantly different from the examples above: a new topic, a new domain."


def band(energies: list[float], lo: float, hi: float) -> list[int]:
    """Indices of the samples whose energy rank lies in [lo, hi) of the ascending order.

    Ranks floor(lo*n) .. ceil(hi*n)-1: for a block of 8 with (0.5, 0.8) that is ranks 4, 5, 6, exactly
    the released code's `order[4:7]`.
    """
    n = len(energies)
    order = sorted(range(n), key=lambda i: energies[i])
    start, stop = int(math.floor(lo * n)), min(n, int(math.ceil(hi * n)))
    return order[start:stop]


def select_feedback(energies: list[float], mode: str, n: int, lo: float, hi: float, seed: int) -> list[int]:
    """Which validation samples become next iteration's demonstrations.

    band: the [lo, hi) energy band (thinned evenly to n if larger) — GOLD; top: the n highest energies;
    random: n at random (ablation); none: no feedback (GOLD's rounds, label filter and loss stay: not ZeroGen).
    """
    if mode == "none" or n <= 0 or not energies:
        return []
    if mode == "top":
        return sorted(range(len(energies)), key=lambda i: energies[i], reverse=True)[:n]
    if mode == "random":
        return random.Random(seed).sample(range(len(energies)), min(n, len(energies)))
    picked = band(energies, lo, hi)
    if len(picked) > n:  # keep the band's spread rather than its low or high end
        picked = [picked[round(j * (len(picked) - 1) / max(n - 1, 1))] for j in range(n)]
    return picked


def sce_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    weights: torch.Tensor,
    alpha: float = 1.0,
    beta: float = 1.0,
    clamp: float = 1e-4,
) -> torch.Tensor:
    """alpha * CE + beta * RCE, weighted mean over rows. `targets`: label ids [N] or distributions [N, K].

    RCE = -sum_k p_k log(clamp(q_k, clamp, 1)); for a one-hot q this is -log(clamp) * (1 - p_y): bounded, so a
    wrong label costs at most -log(clamp) instead of an unbounded CE. p is clamped to [1e-7, 1] as in the code.
    """
    q = targets.float() if targets.is_floating_point() else F.one_hot(targets, logits.shape[-1]).float()
    ce = -(q * F.log_softmax(logits.float(), -1)).sum(-1)
    p = logits.float().softmax(-1).clamp(min=1e-7, max=1.0)
    rce = -(p * q.clamp(min=clamp, max=1.0).log()).sum(-1)
    per = alpha * ce + beta * rce
    return (per * weights).sum() / weights.sum().clamp(min=1e-8)


def energy_stats(energies: list[float]) -> dict[str, float]:
    if not energies:
        return {}
    t = torch.tensor(energies, dtype=torch.float64)
    q = torch.quantile(t, torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)).tolist()
    return {
        "energy_mean": float(t.mean()),
        "energy_std": float(t.std()) if len(energies) > 1 else 0.0,
        "energy_q10": q[0],
        "energy_q50": q[1],
        "energy_q90": q[2],
    }


def iteration_requests(
    spec: TaskSpec,
    k: int,
    n_train: int,
    n_val: int,
    real: dict[str, list[str]],
    contexts: list[str],
    feedback: dict[str, list[str]],
    real_demos: int,
    feedback_ratio: float,
    prefix: str,
    seed: int,
    thash: str,
) -> list[dict]:
    """Requests of iteration k: a training block and a 'significantly different' validation block.

    Labels are spread evenly over each block. Every prompt shows `real_demos` real same-label examples
    (numbered 1..), then — in a `feedback_ratio` share of requests — last iteration's feedback samples of
    that label as further numbered examples, exactly as GOLD appends its feedback as demos 4, 5, 6.
    """
    rng = random.Random(f"{seed}-gold-{k}")
    labels = spec.label_names
    rows = []
    for block, n, extra in (("train", n_train, ""), ("val", n_val, VAL_INSTRUCTION)):
        for j in range(n):
            label = labels[j % len(labels)]
            context = rng.choice(contexts) if spec.kind == "pair" else None
            demos = rng.sample(real.get(label, []), min(real_demos, len(real.get(label, []))))
            if feedback.get(label) and rng.random() < feedback_ratio:
                demos = demos + feedback[label]
            messages = generation_messages(spec, label, context, demos, extra if demos else "")
            row = make_request(thash, f"{thash}-gold{k}-{block}-{j}", label, context, messages, prefix, seed, demos)
            rows.append({**row, "block": block})
    return rows


def drop_high_energy(rows: list[dict], e: list[float], fraction: float) -> tuple[list[dict], int]:
    """Optional noise filter: remove the `fraction` of samples with the highest energy `e` (the last student's: the
    ones it finds most out-of-distribution)."""
    n_drop = int(len(rows) * fraction)
    drop = set(sorted(range(len(rows)), key=lambda i: e[i], reverse=True)[:n_drop])
    return [r for i, r in enumerate(rows) if i not in drop], n_drop

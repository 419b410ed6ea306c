"""GOLD's out-of-distribution score: the free energy of a model's logits (Liu et al. 2020). Pure functions on tensors,
below both methods/ (GOLD's feedback rule uses the scores) and students/ (each student kind computes them), so neither
imports the other.

Sign: lower = in-distribution (confident), higher = more out-of-distribution.
"""

from __future__ import annotations

import torch


def energy(logits: torch.Tensor, T: float = 1.0) -> torch.Tensor:
    """Per-row energy of classifier logits (..., K) -> (...). Higher = more out-of-distribution."""
    return -T * torch.logsumexp(logits / T, dim=-1)


def sequence_energy(
    logits: torch.Tensor, target_mask: torch.Tensor, include_pad: bool = True, T: float = 1.0
) -> torch.Tensor:
    """Token-level energy of a generated target under teacher forcing (methods.md §2.6), one value per sequence.

    logits [N, L, V] at the L target positions, target_mask [N, L] (1 = a real target token, 0 = padding).
    E = -(1/L) sum_t T*logsumexp(f_t / T): the released code averages over every position, pads included
    (`include_pad=True`, the default, as in the code); `include_pad=False` averages over real tokens only.
    """
    per = energy(logits.float(), T)  # [N, L]
    if include_pad:
        return per.mean(-1)
    mask = target_mask.to(per.dtype)
    return (per * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)

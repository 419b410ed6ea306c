"""GOLD's pure functions against hand-computed values."""

import math

import pytest
import torch

from distill.methods.gold.algorithm import band, energy, energy_stats, sce_loss, select_feedback


def test_energy_by_hand_and_sign():
    logits = torch.tensor([[0.0, 0.0], [10.0, 0.0]])
    e = energy(logits)
    assert e[0].item() == pytest.approx(-math.log(2))  # -log(e^0 + e^0)
    assert e[1].item() == pytest.approx(-math.log(math.exp(10) + 1))  # confident -> much lower energy
    assert e[1] < e[0]  # higher energy = less confident = more out-of-distribution
    # temperature: E = -T log sum exp(l / T)
    assert energy(torch.tensor([2.0, 4.0]), T=2.0).item() == pytest.approx(-2 * math.log(math.exp(1) + math.exp(2)))


def test_band_reproduces_released_code():
    energies = [0.7, 0.1, 0.5, 0.3, 0.9, 0.2, 0.8, 0.4]  # ascending ranks: 1,5,3,7,2,0,6,4
    assert band(energies, 0.5, 0.8) == [2, 0, 6]  # ranks 4, 5, 6 = the code's order[4:7]
    assert band(energies, 0.0, 1.0) == [1, 5, 3, 7, 2, 0, 6, 4]
    assert band([], 0.5, 0.8) == []


def test_feedback_modes():
    energies = [float(i) for i in range(10)]
    assert select_feedback(energies, "top", 3, 0.5, 0.8, 0) == [9, 8, 7]
    assert select_feedback(energies, "band", 10, 0.5, 0.8, 0) == [5, 6, 7]
    assert select_feedback(energies, "band", 2, 0.0, 1.0, 0) == [0, 9]  # thinned evenly across the band
    assert select_feedback(energies, "none", 3, 0.5, 0.8, 0) == []
    r = select_feedback(energies, "random", 3, 0.5, 0.8, 0)
    assert len(set(r)) == 3 and r == select_feedback(energies, "random", 3, 0.5, 0.8, 0)


def test_sce_by_hand():
    logits = torch.tensor([[math.log(3.0), 0.0]])  # p = [0.75, 0.25]
    y = torch.tensor([0])
    w = torch.ones(1)
    ce = -math.log(0.75)
    rce = -math.log(1e-4) * (1 - 0.75)  # -sum_k p_k log(clamp(onehot_k)) = -log(1e-4) * p_wrong
    assert sce_loss(logits, y, w, alpha=1.0, beta=0.0).item() == pytest.approx(ce, rel=1e-5)
    assert sce_loss(logits, y, w, alpha=0.0, beta=1.0).item() == pytest.approx(rce, rel=1e-4)
    assert sce_loss(logits, y, w, alpha=0.1, beta=1.0).item() == pytest.approx(0.1 * ce + rce, rel=1e-4)
    # a confidently wrong label costs a bounded amount under RCE
    wrong = sce_loss(torch.tensor([[20.0, -20.0]]), torch.tensor([1]), w, alpha=0.0, beta=1.0).item()
    assert wrong == pytest.approx(-math.log(1e-4), rel=1e-3)


def test_energy_stats():
    s = energy_stats([1.0, 2.0, 3.0])
    assert s["energy_mean"] == pytest.approx(2.0) and s["energy_q50"] == pytest.approx(2.0)
    assert energy_stats([]) == {}


def test_sequence_energy_by_hand():
    """Token-level energy (SVAMP-style seq2seq): mean of -logsumexp over target positions, pads in or out."""
    from distill.methods.gold.algorithm import sequence_energy

    logits = torch.zeros(2, 3, 4)  # logsumexp of 4 zeros = log 4 at every position
    logits[1, 2] = torch.tensor([10.0, 0.0, 0.0, 0.0])  # the second sequence's last position is a pad
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    lse_pad = math.log(math.exp(10) + 3)
    with_pad = sequence_energy(logits, mask)
    assert with_pad[0].item() == pytest.approx(-math.log(4))
    assert with_pad[1].item() == pytest.approx(-(2 * math.log(4) + lse_pad) / 3)  # the code: pads count
    without = sequence_energy(logits, mask, include_pad=False)
    assert without[1].item() == pytest.approx(-math.log(4))  # real tokens only
    assert sequence_energy(logits * 2, mask, T=2.0)[0].item() == pytest.approx(-2 * math.log(4))

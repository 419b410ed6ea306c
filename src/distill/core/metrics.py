"""Classification metrics as pure functions (no sklearn needed for three numbers)."""

from __future__ import annotations


def accuracy(gold: list[str], pred: list[str]) -> float:
    return sum(g == p for g, p in zip(gold, pred)) / len(gold) if gold else 0.0


def macro_f1(gold: list[str], pred: list[str], labels: list[str]) -> float:
    """Mean over labels of F1; a label never predicted and never present counts as F1 = 0 only if present."""
    scores = []
    for y in labels:
        tp = sum(g == y and p == y for g, p in zip(gold, pred))
        fp = sum(g != y and p == y for g, p in zip(gold, pred))
        fn = sum(g == y and p != y for g, p in zip(gold, pred))
        if tp + fp + fn == 0:
            continue
        scores.append(2 * tp / (2 * tp + fp + fn))
    return sum(scores) / len(scores) if scores else 0.0


def balanced_accuracy(gold: list[str], pred: list[str]) -> float:
    """Mean over the labels present in `gold` of their recall: 1/K for any labeller that ignores its input, whatever
    the label mix (accuracy would give a constant guess the majority's share)."""
    recalls = []
    for y in sorted(set(gold)):
        rows = [p for g, p in zip(gold, pred) if g == y]
        recalls.append(sum(p == y for p in rows) / len(rows))
    return sum(recalls) / len(recalls) if recalls else 0.0


def chance_p_value(gold: list[str], pred: list[str], permutations: int = 2000, seed: int = 0) -> float:
    """One-sided permutation test of 'the labels carry no information about the rows': the share of random pairings
    of `pred` with `gold` (both label mixes kept) whose balanced accuracy reaches the observed one, (1 + k) / (1 + n)."""
    import random

    observed, rng, shuffled, hits = balanced_accuracy(gold, pred), random.Random(seed), list(pred), 0
    for _ in range(permutations):
        rng.shuffle(shuffled)
        hits += balanced_accuracy(gold, shuffled) >= observed - 1e-12
    return (1 + hits) / (1 + permutations)


def worse_p_value(gold: list[str], a: list[str], b: list[str]) -> float:
    """One-sided exact sign test (McNemar) that labeller `a` is right less often than `b` on the same rows: the
    binomial(n, 1/2) probability of at most `wins` rows where only `a` is right, n being the rows where one is."""
    from math import comb

    wins = sum(x == g != y for g, x, y in zip(gold, a, b))
    n = wins + sum(y == g != x for g, x, y in zip(gold, a, b))
    return sum(comb(n, k) for k in range(wins + 1)) / 2**n if n else 1.0

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

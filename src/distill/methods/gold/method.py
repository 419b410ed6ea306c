"""GOLD (Gholami et al. 2024): generate, refresh the student, energy-score the samples, feed the tail back
(stages `gold_start`, `gold_iter`); the final student trains with a noise-robust loss (SCE)."""

from __future__ import annotations

import functools
from pathlib import Path

from distill.methods.base import Method, TrainingSet, iterative_set
from distill.methods.gold.params import GoldParams


def training_set(params, task, gold_dir: Path) -> TrainingSet:
    g = params.gold
    last, data = iterative_set(gold_dir, "iter", g.iterations)
    if not (g.drop_top_energy > 0 and data.rows and (last / "student").is_dir()):
        return data
    from distill.methods.gold.algorithm import drop_high_energy
    from distill.students.model import load_student

    energies = load_student(last / "student").energies(data.rows, g.energy_T)
    rows, dropped = drop_high_energy(data.rows, energies, g.drop_top_energy)
    return TrainingSet(rows, data.source, data.curve, dropped)


def loss(params):
    g = params.gold
    if g.loss != "sce":
        return None
    from distill.methods.gold.algorithm import sce_loss

    return functools.partial(sce_loss, alpha=g.sce_alpha, beta=g.sce_beta, clamp=g.sce_clamp)


def train_config(params):
    """The released code's final schedule (§2.11), where set: its own epochs and learning rate."""
    g = params.gold
    return params.train.model_copy(update={k: v for k, v in (("epochs", g.final_epochs), ("lr", g.final_lr)) if v})


METHOD = Method(
    "gold", training_set, GoldParams, loss=loss, train_config=train_config, commands="distill.methods.gold.cli"
)

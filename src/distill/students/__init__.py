"""Students: the classifier (students/model.py) and its two training recipes (finetune, setfit), one entry point;
the seq2seq causal LM (students/generator.py). Which one a task gets is its kind's business (kinds/).

Every method trains its students through `train_student`, so the methods table compares data, not schedules.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from distill.core.io import DistillError


def train_student(
    rows: list[dict[str, Any]],
    labels: Sequence[str],
    fields: Sequence[str],
    cfg,
    seed: int,
    *,
    task: str = "",
    start=None,
    loss_fn=None,
    selector=None,
    select_rows: Sequence[dict] = (),
    epochs: int | None = None,
    lr: float | None = None,
    log: Callable[[str], None] = print,
):
    """Train a student on `rows` with the recipe cfg.recipe -> (Student, per-epoch history).

    start: a Student to continue from (GOLD's cumulative refresh) instead of a fresh head on cfg.model.
    loss_fn / selector / epochs / lr: a method's hooks (GOLD's SCE and schedules, LLKD's online selection).
    A seq2seq task's student (a causal LM) trains through its kind (kinds/seq2seq.py) on the same loop.
    """
    from distill.students.model import new_student, resolve_student

    if not rows:
        raise DistillError("no training data: every sample was filtered out (see the data stages' metrics)")
    if cfg.recipe == "setfit":
        if selector is not None or loss_fn is not None:
            raise DistillError(
                "train.recipe: setfit has no per-batch loss or online selection (GOLD's SCE, LLKD): "
                "use train.recipe: finetune with this method"
            )
        from distill.students.distributed import world
        from distill.students.setfit_recipe import train_setfit

        if world()[1] > 1:
            raise DistillError("train.recipe: setfit runs in one process; launch the train stage without accelerate")

        return train_setfit(rows, labels, fields, resolve_student(cfg.model), cfg, seed, task, log), []
    from distill.students.finetune import finetune, soft_cross_entropy

    student = start or new_student(
        resolve_student(cfg.model), labels, fields, seed, cfg.pooling, max_length=cfg.max_length, task=task
    )
    history = finetune(
        student,
        rows,
        cfg,
        seed,
        loss_fn or soft_cross_entropy,
        selector,
        select_rows,
        log,
        epochs,
        lr,
        probe=start is None,
    )  # a continued student keeps its head
    return student, history

"""Students: one model kind (students/model.py) and two training recipes (finetune, setfit), one entry point.

Every method trains its students through `train_student`, so the methods table compares data, not schedules.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from distill.io import DistillError


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
    spec=None,
):
    """Train a student on `rows` with the recipe cfg.recipe -> (Student, per-epoch history).

    start: a Student to continue from (GOLD's cumulative refresh) instead of a fresh head on cfg.model.
    loss_fn / selector / epochs / lr: a method's hooks (GOLD's SCE and schedules, LLKD's online selection).
    cfg: the student's settings as resolved.student_config gives them for the task kind.
    spec: the task spec; a seq2seq task's student is a causal LM (students/generator.py, cfg.lm_model) trained by the
    same loop on its token cross-entropy (a classifier's loss such as GOLD's SCE does not apply; LLKD's selector reads
    each row's mean token NLL).
    """
    from distill.students.model import new_student, resolve_student

    if not rows:
        raise DistillError("no training data: every sample was filtered out (see the data stages' metrics)")
    if spec is not None and spec.seq2seq:
        if cfg.recipe != "finetune":
            raise DistillError(f"task {spec.name} is seq2seq: its causal-LM student trains with train.recipe: finetune")
        from distill.students.finetune import finetune, sequence_loss

        # cfg is already the causal LM's (resolved.student_config: train.lm_* in place of the encoder's settings)
        student = start or fresh_student(spec, cfg, seed)
        return student, finetune(
            student, rows, cfg, seed, sequence_loss, selector, select_rows, log, epochs, lr, probe=False
        )
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


def fresh_student(spec, cfg, seed: int):
    """An untrained student for the task (GOLD's iteration 1 scores energies before any data exists)."""
    if spec.seq2seq:
        from distill.students.generator import new_generator, resolve_lm

        return new_generator(resolve_lm(cfg.lm_model), spec, seed, cfg.lm_max_length)
    from distill.students.model import new_student, resolve_student

    return new_student(
        resolve_student(cfg.model),
        spec.label_names,
        spec.field_names,
        seed,
        cfg.pooling,
        max_length=cfg.max_length,
        task=spec.name,
    )


def student_config(train, spec):
    """The task kind's student settings: a seq2seq task's student (a causal LM) trains with train.lm_* in place of the
    encoder's batch size, learning rate and step floor; a classification student with train as it is."""
    if not spec.seq2seq:
        return train
    update = {"batch_size": train.lm_batch_size, "lr": train.lm_lr, "min_steps": train.lm_min_steps}
    return train.model_copy(update=update)

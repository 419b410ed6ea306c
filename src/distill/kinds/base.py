"""What a task kind provides to the stages: its student's settings, a new student, training, a real fewshot row as
training data, generation requests and what a method's pseudo-labels need (this class); its synthesis and its
evaluation, functions named like the kind in kinds/synthesis.py and kinds/evaluation.py (modules of their own: only the
stages that generate data or evaluate call the teacher, so the stages that train do not depend on it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence


@dataclass
class Evaluation:
    """What evaluate hands a kind: the student, the splits, the teacher, and the method's labeller rule."""

    params: Any
    spec: Any
    student: Any
    test: list[dict]  # all test rows: the student is scored on all of them
    validation: list[dict]  # the validation rows this run is judged on
    rows: list[dict]  # the teacher's sample of test
    val_rows: list[dict]  # ... and of validation
    fewshot: list[dict]
    teacher: Any
    labeller: Callable[[list[dict], list], Any]  # (rows, the teacher's distributions) -> what the student learned from
    reference: Callable[[list[dict]], Any] = lambda rows: None  # rows -> what the fewshot labels alone give (or None)


class TaskKind:
    name = ""
    student_kind = ""  # distill.json's `kind` of its trained student
    generative = False  # its student writes the target (a causal LM): its per-row output is a token loss, not logits
    request_keys: tuple[str, ...] = ()  # what every generation request holds (read_jsonl's `required`)
    samples = ""  # what its generated rows are called in messages

    def student_config(self, train):
        """train: params.yaml's TrainParams -> the settings this kind's student trains with."""
        raise NotImplementedError

    def new_student(self, spec, cfg, seed: int):
        """An untrained student for the task (GOLD's iteration 1 scores energies before any data exists)."""
        raise NotImplementedError

    def train(
        self,
        spec,
        rows: list[dict],
        cfg,
        seed: int,
        *,
        start=None,
        loss_fn=None,
        selector=None,
        select_rows: Sequence[dict] = (),
        epochs: int | None = None,
        lr: float | None = None,
        log: Callable[[str], None] = print,
    ):
        """Train a student on `rows` with cfg (as student_config gives it) -> (student, per-epoch history).
        start: a student to continue from (GOLD's cumulative refresh); loss_fn / selector / epochs / lr: a method's
        hooks (GOLD's SCE and schedules, LLKD's online selection)."""
        raise NotImplementedError

    def fewshot_row(self, spec, row: dict, weight: float) -> dict:
        """A real labelled fewshot row as a training row of weight `weight`, marked certain (confidence 1)."""
        raise NotImplementedError

    def requests(self, params, task, fewshot: list[dict], demos: int) -> tuple[list[dict], str]:
        """ZeroGen-style generation requests, `demos` real fewshot rows shown in each -> (the requests, how many of
        what, in words). The teacher's samples are checked by kinds/synthesis.py's function of the same kind."""
        raise NotImplementedError

    def label_check_fewshot(self, params, task) -> list[dict]:
        """The fewshot rows synthesis shows the teacher when it checks a sample's label ([]: no label check). Read here,
        before any LLM call, so a bad file stops the stage first."""
        raise NotImplementedError

    def classes(self, spec) -> int:
        """How many classes its pseudo-labels fall into (LLKD's per-class thresholds)."""
        raise NotImplementedError

    def class_id(self, spec, row: dict) -> int:
        """A labelled row's class, 0 .. classes - 1."""
        raise NotImplementedError


def val_line(metrics: dict) -> str:
    """The validation part of evaluate's summary line."""
    if not metrics["val_n"]:
        return "no val_* metrics: this run's training data used all of validation.jsonl"
    capped = f" (a sample of {metrics['val_teacher_n']} rows)" if metrics["val_teacher_n"] < metrics["val_n"] else ""
    said = f"labeller {metrics['val_labeller_accuracy']:.4f}, " if "val_labeller_accuracy" in metrics else ""
    return (
        f"on {metrics['val_n']} validation rows: student {metrics['val_student_accuracy']:.4f}, "
        f"{said}teacher {metrics['val_teacher_accuracy']:.4f}{capped}{teacher_check(metrics)}"
    )


def teacher_check(metrics: dict) -> str:
    """What the labeller (else the teacher) adds on validation to the fewshot labels alone, in words ('' unmeasured):
    the rule `method: auto` follows (methods/auto.teacher_verdict), with the numbers behind it."""
    if "val_teacher_gain" not in metrics:
        return ""
    gain, ref = metrics["val_teacher_gain"], metrics["val_reference_accuracy"]
    said = f"; the fewshot labels alone (a linear probe) {ref:.4f}: "
    if not metrics.get("val_teacher_adds", gain > 0):
        at_chance = metrics.get("val_teacher_at_chance", 1)
        why = "its labels are at chance" if at_chance else "the labeller is worse than the fewshot labels alone"
        return said + (
            f"the teacher adds nothing on this task ({why}). "
            "The few-shot reference: `-S method=labelled -S train.recipe=setfit`"
        )
    if gain > 0:
        return said + f"the teacher adds {100 * gain:+.1f} points"
    return said + f"the labeller is level with them ({100 * gain:+.1f} points, within noise): the teacher is kept"

"""Stage `evaluate`: accuracy and macro-F1 on test.jsonl of the student and of the teacher itself, and both
accuracies on validation.jsonl (`val_*`: what to compare experiments on when choosing settings and what @champion is
decided by; test is for reporting). `val_*` counts only the validation rows the run's data never depended on
(`judged_validation`), so a method that reads validation.jsonl (S3) is not judged on its own material.

The teacher is scored as a few-shot classifier (plain prompt, label log-probs). Beside it, the *labeller*: what the
student was trained to imitate, scored on the same rows, by the method's own rule (its `labeller` hook). For LLKD that
is the teacher's distribution times the few-shot prior (`llkd.fewshot_prior`), as llkd_label labels the pool; for
ZeroGen, GOLD and S3 it is the teacher's own label check, the same numbers as the teacher's; the `labelled` reference
and an unchecked ZeroGen (`generate.label_filter: none`) have none. The student is also scored on the teacher's rows (`*_teacher_rows`), so
the three compare on one sample when the teacher's is capped (`evaluate.teacher_max_examples`). The teacher's
answers are cached, so re-evaluating a new student costs no LLM call.
"""

from __future__ import annotations

from distill.config import Params
from distill.core.io import write_json
from distill.kinds import evaluation, kind_of
from distill.kinds.base import Evaluation
from distill.methods.registry import method_of
from distill.students.model import load_student
from distill.students.prior import fewshot_reference
from distill.stages import capped, checked_task
from distill.teachers import make_teacher


def judged_validation(params: Params, fields: list[str], validation: list[dict]) -> list[dict]:
    """The validation rows a run is judged on: those its training data never depended on (the method says which:
    S3 mines a part of validation.jsonl, `labelled` may train on all of it and then gets no val_* metrics)."""
    return method_of(params).judged_validation(params, fields, validation)


def run(params: Params, task_dir: str, model_dir: str, metrics_out: str, plot_out: str) -> None:
    task = checked_task(task_dir)
    spec = task.spec
    test, validation = task.load("test"), judged_validation(params, spec.field_names, task.load("validation"))
    fewshot = task.load("fewshot")  # validate all inputs before any model or LLM call

    from distill.students.distributed import train_device

    model = load_student(model_dir, train_device(params.train.device))
    cap = params.evaluate.teacher_max_examples  # the teacher's baseline rows, on both splits
    rows, val_rows = capped(test, cap), capped(validation, cap)
    labeller = lambda on, probs: labeller_probs(params, spec, fewshot, on, probs)  # noqa: E731
    reference = lambda on: fewshot_reference(params, spec, fewshot, on)  # noqa: E731
    teacher = make_teacher(params.teacher)
    ev = Evaluation(params, spec, model, test, validation, rows, val_rows, fewshot, teacher, labeller, reference)
    metrics, plot, line = evaluation.evaluate(kind_of(spec), ev)
    write_json(metrics_out, metrics)
    write_json(plot_out, plot)
    print(f"evaluate: {line}")


def labeller_probs(params: Params, spec, fewshot: list[dict], rows: list[dict], teacher_probs: list[list[float]]):
    """What the student learned from, as label distributions on `rows`, by the method's rule (None where it learned
    from real or requested labels): LLKD's teacher x few-shot prior, the other methods' teacher label check."""
    return method_of(params).labeller(params, spec, fewshot, rows, teacher_probs)

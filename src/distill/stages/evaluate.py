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

import random

from distill.config import Params
from distill.io import write_json
from distill.methods.registry import method_of
from distill.prompting.fewshot import top_label
from distill.metrics import accuracy, macro_f1
from distill.students.model import load_student
from distill.synthesis import classify, llm_metrics
from distill.stages import checked_task
from distill.teachers import make_teacher


def judged_validation(params: Params, fields: list[str], validation: list[dict]) -> list[dict]:
    """The validation rows a run is judged on: those its training data never depended on (the method says which:
    S3 mines a part of validation.jsonl, `labelled` may train on all of it and then gets no val_* metrics)."""
    return method_of(params).judged_validation(params, fields, validation)


def capped(rows: list[dict], cap: int | None) -> list[dict]:
    """At most `cap` rows, a uniform sample in file order (the same rows for every seed and method, so teacher
    baselines compare): the first rows of a file sorted by label would measure one label."""
    if not cap or len(rows) <= cap:
        return rows
    return [rows[i] for i in sorted(random.Random(0).sample(range(len(rows)), cap))]


def run(params: Params, task_dir: str, model_dir: str, metrics_out: str, plot_out: str) -> None:
    task = checked_task(task_dir)
    spec = task.spec
    test, validation = task.load("test"), judged_validation(params, spec.field_names, task.load("validation"))
    fewshot = task.load("fewshot")  # validate all inputs before any model or LLM call

    from distill.students.distributed import train_device

    model = load_student(model_dir, train_device(params.train.device))
    cap = params.evaluate.teacher_max_examples  # the teacher's baseline rows, on both splits
    rows, val_rows = capped(test, cap), capped(validation, cap)
    if spec.seq2seq:
        return evaluate_seq2seq(params, spec, model, test, validation, rows, val_rows, fewshot, metrics_out, plot_out)
    gold = [r["label"] for r in test]
    student = model.predict(test, params.evaluate.batch_size)

    teacher = make_teacher(params.teacher)
    probs, raw = classify(teacher, spec, rows, fewshot, params.teacher, params.seed, desc="teacher on test")
    teacher_gold = [r["label"] for r in rows]
    argmax = lambda p: spec.label_names[top_label(p)]  # noqa: E731
    teacher_pred = [argmax(p) for p in probs]
    raw_pred = [argmax(p) for p in raw]
    on_rows = ids_of(test, rows)  # the student's predictions on the teacher's rows
    student_rows = [student[i] for i in on_rows]
    labeller = labeller_probs(params, spec, fewshot, rows, probs)
    val = {}
    if validation:
        val_probs, _ = classify(
            teacher, spec, val_rows, fewshot, params.teacher, params.seed, desc="teacher on validation"
        )
        val_gold, val_student = [r["label"] for r in val_rows], model.predict(validation, params.evaluate.batch_size)
        all_gold, val_teacher = [r["label"] for r in validation], [argmax(p) for p in val_probs]
        # validation splits are often imbalanced (CR 63/137, MPQA 152/48): macro-F1 beside accuracy
        val = {
            "val_student_accuracy": accuracy(all_gold, val_student),
            "val_student_macro_f1": macro_f1(all_gold, val_student, spec.label_names),
            "val_student_accuracy_teacher_rows": accuracy(
                val_gold, [val_student[i] for i in ids_of(validation, val_rows)]
            ),
            "val_teacher_accuracy": accuracy(val_gold, val_teacher),
            "val_teacher_macro_f1": macro_f1(val_gold, val_teacher, spec.label_names),
            "val_teacher_n": len(val_rows),
        }
        if labeller is not None:
            val_labeller = [argmax(p) for p in labeller_probs(params, spec, fewshot, val_rows, val_probs)]
            val.update(
                val_labeller_accuracy=accuracy(val_gold, val_labeller),
                val_labeller_macro_f1=macro_f1(val_gold, val_labeller, spec.label_names),
            )

    metrics = {
        "student_accuracy": accuracy(gold, student),
        "student_macro_f1": macro_f1(gold, student, spec.label_names),
        "student_accuracy_teacher_rows": accuracy(teacher_gold, student_rows),
        "teacher_accuracy": accuracy(teacher_gold, teacher_pred),
        "teacher_macro_f1": macro_f1(teacher_gold, teacher_pred, spec.label_names),
        "teacher_accuracy_uncalibrated": accuracy(teacher_gold, raw_pred),
        "n_test": len(test),
        "teacher_n_test": len(rows),
        "val_n": len(validation),
        **val,
        **llm_metrics(teacher),
    }
    if labeller is not None:
        labeller_pred = [argmax(p) for p in labeller]
        metrics.update(
            labeller_accuracy=accuracy(teacher_gold, labeller_pred),
            labeller_macro_f1=macro_f1(teacher_gold, labeller_pred, spec.label_names),
        )
    write_json(metrics_out, metrics)
    write_json(plot_out, [{"actual": g, "predicted": p} for g, p in zip(gold, student)])
    said = f"labeller {metrics['labeller_accuracy']:.4f}, " if labeller is not None else ""
    print(
        f"evaluate: student accuracy {metrics['student_accuracy']:.4f} (macro-F1 {metrics['student_macro_f1']:.4f}); "
        f"on the teacher's {len(rows)} test rows: student {metrics['student_accuracy_teacher_rows']:.4f}, {said}"
        f"teacher {metrics['teacher_accuracy']:.4f}; {val_line(metrics)}"
    )


def ids_of(rows: list[dict], sample: list[dict]) -> list[int]:
    """Positions in `rows` of a sample's rows (`capped` keeps the row objects themselves)."""
    at = {id(r): i for i, r in enumerate(rows)}
    return [at[id(r)] for r in sample]


def labeller_probs(params: Params, spec, fewshot: list[dict], rows: list[dict], teacher_probs: list[list[float]]):
    """What the student learned from, as label distributions on `rows`, by the method's rule (None where it learned
    from real or requested labels): LLKD's teacher x few-shot prior, the other methods' teacher label check."""
    return method_of(params).labeller(params, spec, fewshot, rows, teacher_probs)


def val_line(metrics: dict) -> str:
    if not metrics["val_n"]:
        return "no val_* metrics: this run's training data used all of validation.jsonl"
    capped = f" (a sample of {metrics['val_teacher_n']} rows)" if metrics["val_teacher_n"] < metrics["val_n"] else ""
    said = f"labeller {metrics['val_labeller_accuracy']:.4f}, " if "val_labeller_accuracy" in metrics else ""
    return (
        f"on {metrics['val_n']} validation rows: student {metrics['val_student_accuracy']:.4f}, "
        f"{said}teacher {metrics['val_teacher_accuracy']:.4f}{capped}"
    )


def evaluate_seq2seq(
    params: Params,
    spec,
    model,
    test: list[dict],
    validation: list[dict],
    rows: list[dict],
    val_rows: list[dict],
    fewshot: list[dict],
    metrics_out: str,
    plot_out: str,
) -> None:
    """seq2seq tasks: accuracy = the answer checker (numeric for SVAMP) on greedy answers, the student's and the
    teacher's (few-shot worked examples, greedy; cached), on test and validation (the teacher on `rows`, `val_rows`)."""
    from distill.prompting.seq2seq import accuracy as checked
    from distill.synthesis import solve

    target = spec.target.name
    student = model.predict(test, params.evaluate.batch_size)
    teacher = make_teacher(params.teacher)
    answers = solve(teacher, spec, rows, fewshot, params.teacher, params.seed, desc="teacher on test")
    val = {}
    if validation:
        val_answers = solve(teacher, spec, val_rows, fewshot, params.teacher, params.seed, desc="teacher on validation")
        val = {
            "val_student_accuracy": checked(spec, model.predict(validation, params.evaluate.batch_size), validation),
            "val_teacher_accuracy": checked(spec, val_answers, val_rows),
            "val_teacher_n": len(val_rows),
        }
    metrics = {
        "student_accuracy": checked(spec, student, test),
        "teacher_accuracy": checked(spec, answers, rows),
        "n_test": len(test),
        "teacher_n_test": len(rows),
        "val_n": len(validation),
        **val,
        **llm_metrics(teacher),
    }
    write_json(metrics_out, metrics)
    write_json(plot_out, [{"actual": r[target], "predicted": a} for r, a in zip(test, student)])
    print(
        f"evaluate: student accuracy {metrics['student_accuracy']:.4f}, teacher accuracy {metrics['teacher_accuracy']:.4f} "
        f"on {len(rows)} test rows; {val_line(metrics)}"
    )

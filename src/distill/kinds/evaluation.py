"""Each task kind's evaluation, a function named like the kind: (Evaluation) -> (metrics, plot rows, a one-line
summary). In a module of its own: only the evaluate stage runs the teacher's scoring, so the stages that train do not
depend on it."""

from __future__ import annotations

from distill.kinds.base import Evaluation, TaskKind, val_line


def evaluate(kind: TaskKind, ev: Evaluation):
    return globals()[kind.name](ev)


def classification(ev: Evaluation):
    """The teacher as a few-shot classifier (plain prompt, label log-probs, cached); the student on all rows and
    on the teacher's; the labeller (the method's rule) on the teacher's rows."""
    from distill.core.metrics import accuracy, macro_f1
    from distill.prompting.fewshot import top_label
    from distill.synthesis import classify, llm_metrics

    p, spec, labels = ev.params, ev.spec, ev.spec.label_names
    argmax = lambda probs: labels[top_label(probs)]  # noqa: E731
    gold = [r["label"] for r in ev.test]
    student = ev.student.predict(ev.test, p.evaluate.batch_size)
    probs, raw = classify(ev.teacher, spec, ev.rows, ev.fewshot, p.teacher, p.seed, desc="teacher on test")
    teacher_gold, teacher_pred = [r["label"] for r in ev.rows], [argmax(q) for q in probs]
    labeller = ev.labeller(ev.rows, probs)
    metrics = {
        "student_accuracy": accuracy(gold, student),
        "student_macro_f1": macro_f1(gold, student, labels),
        "student_accuracy_teacher_rows": accuracy(teacher_gold, [student[i] for i in ids_of(ev.test, ev.rows)]),
        "teacher_accuracy": accuracy(teacher_gold, teacher_pred),
        "teacher_macro_f1": macro_f1(teacher_gold, teacher_pred, labels),
        "teacher_accuracy_uncalibrated": accuracy(teacher_gold, [argmax(q) for q in raw]),
        "n_test": len(ev.test),
        "teacher_n_test": len(ev.rows),
        "val_n": len(ev.validation),
    }
    if ev.validation:
        val_probs, _ = classify(
            ev.teacher, spec, ev.val_rows, ev.fewshot, p.teacher, p.seed, desc="teacher on validation"
        )
        val_gold, val_student = (
            [r["label"] for r in ev.val_rows],
            ev.student.predict(ev.validation, p.evaluate.batch_size),
        )
        all_gold, val_teacher = [r["label"] for r in ev.validation], [argmax(q) for q in val_probs]
        # validation splits are often imbalanced (CR 63/137, MPQA 152/48): macro-F1 beside accuracy
        metrics.update(
            {
                "val_student_accuracy": accuracy(all_gold, val_student),
                "val_student_macro_f1": macro_f1(all_gold, val_student, labels),
                "val_student_accuracy_teacher_rows": accuracy(
                    val_gold, [val_student[i] for i in ids_of(ev.validation, ev.val_rows)]
                ),
                "val_teacher_accuracy": accuracy(val_gold, val_teacher),
                "val_teacher_macro_f1": macro_f1(val_gold, val_teacher, labels),
                "val_teacher_n": len(ev.val_rows),
            }
        )
        if labeller is not None:
            val_labeller = [argmax(q) for q in ev.labeller(ev.val_rows, val_probs)]
            metrics.update(
                val_labeller_accuracy=accuracy(val_gold, val_labeller),
                val_labeller_macro_f1=macro_f1(val_gold, val_labeller, labels),
            )
        reference = ev.reference(ev.val_rows)
        if reference is not None:  # does the teacher add anything to what the fewshot labels alone give?
            from distill.methods.auto import teacher_verdict

            ref = [argmax(q) for q in reference]
            taught = val_labeller if labeller is not None else val_teacher
            verdict = teacher_verdict(val_gold, val_teacher, taught, ref)  # the rule `method: auto` follows
            metrics.update(
                val_reference_accuracy=accuracy(val_gold, ref),
                val_reference_macro_f1=macro_f1(val_gold, ref, labels),
                val_teacher_gain=accuracy(val_gold, taught) - accuracy(val_gold, ref),
                val_teacher_adds=int(verdict["teacher_adds"]),
                val_teacher_at_chance=int(verdict["teacher_at_chance"]),
                val_teacher_chance_p=verdict["teacher_chance_p"],
                val_labeller_worse_p=verdict["labeller_worse_p"],
            )
    metrics.update(llm_metrics(ev.teacher))
    if labeller is not None:
        labeller_pred = [argmax(q) for q in labeller]
        metrics.update(
            labeller_accuracy=accuracy(teacher_gold, labeller_pred),
            labeller_macro_f1=macro_f1(teacher_gold, labeller_pred, labels),
        )
    said = f"labeller {metrics['labeller_accuracy']:.4f}, " if labeller is not None else ""
    line = (
        f"student accuracy {metrics['student_accuracy']:.4f} (macro-F1 {metrics['student_macro_f1']:.4f}); "
        f"on the teacher's {len(ev.rows)} test rows: student {metrics['student_accuracy_teacher_rows']:.4f}, "
        f"{said}teacher {metrics['teacher_accuracy']:.4f}; {val_line(metrics)}"
    )
    return metrics, [{"actual": g, "predicted": s} for g, s in zip(gold, student)], line


def seq2seq(ev: Evaluation):
    """Accuracy = the answer check on greedy answers: the student's, and the teacher's (few-shot worked examples,
    greedy, cached) on its sample of rows."""
    from distill.prompting.seq2seq import accuracy as checked
    from distill.synthesis import llm_metrics, solve

    p, spec = ev.params, ev.spec
    student = ev.student.predict(ev.test, p.evaluate.batch_size)
    answers = solve(ev.teacher, spec, ev.rows, ev.fewshot, p.teacher, p.seed, desc="teacher on test")
    metrics = {
        "student_accuracy": checked(spec, student, ev.test),
        "teacher_accuracy": checked(spec, answers, ev.rows),
        "n_test": len(ev.test),
        "teacher_n_test": len(ev.rows),
        "val_n": len(ev.validation),
    }
    if ev.validation:
        val_answers = solve(ev.teacher, spec, ev.val_rows, ev.fewshot, p.teacher, p.seed, desc="teacher on validation")
        metrics.update(
            {
                "val_student_accuracy": checked(
                    spec, ev.student.predict(ev.validation, p.evaluate.batch_size), ev.validation
                ),
                "val_teacher_accuracy": checked(spec, val_answers, ev.val_rows),
                "val_teacher_n": len(ev.val_rows),
            }
        )
    metrics.update(llm_metrics(ev.teacher))
    target = spec.target.name
    line = (
        f"student accuracy {metrics['student_accuracy']:.4f}, teacher accuracy {metrics['teacher_accuracy']:.4f} "
        f"on {len(ev.rows)} test rows; {val_line(metrics)}"
    )
    return metrics, [{"actual": r[target], "predicted": a} for r, a in zip(ev.test, student)], line


def ids_of(rows: list[dict], sample: list[dict]) -> list[int]:
    """Positions in `rows` of a sample's rows (evaluate's `capped` keeps the row objects themselves)."""
    at = {id(r): i for i, r in enumerate(rows)}
    return [at[id(r)] for r in sample]

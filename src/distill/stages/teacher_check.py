"""Stage `teacher_check`: before any method runs, does the teacher add anything to the task's fewshot labels?

Only where params.yaml says `method: auto`. On validation.jsonl: the teacher's few-shot labels, the labeller of the
method the auto rule picks (LLKD: the teacher times the few-shot prior) and the few-shot reference (a linear probe on
the labelled fewshot rows alone). methods/auto.teacher_verdict decides; methods/auto.resolve reads the verdict, so a
teacher at chance, or a labeller worse than the fewshot labels alone, makes `auto` the few-shot reference
(`labelled` on fewshot.jsonl, SetFit where the task has one text per row) instead of a useless student. The teacher's
validation answers land in the LLM cache, where evaluate finds them again.
"""

from __future__ import annotations

from distill.config import Params
from distill.io import write_json


def run(params: Params, task_dir: str, out: str) -> None:
    from distill.methods.auto import check_key

    why = unchecked_because(params, task_dir)
    if why:
        write_json(out, {"checked": False, "why": why, "key": check_key(params)})
        print(f"teacher_check: not run: {why}")
        return
    from distill.methods.auto import rule, teacher_verdict
    from distill.methods.registry import method_of
    from distill.metrics import accuracy
    from distill.prompting.fewshot import top_label
    from distill.stages import capped
    from distill.students.prior import fewshot_reference
    from distill.synthesis import classify
    from distill.tasks import load_task
    from distill.teachers import make_teacher

    task = load_task(task_dir, quiet=True)
    # evaluate's sample of validation (evaluate.teacher_max_examples): each row is an LLM call, and evaluate then
    # finds these answers in the LLM cache
    spec, rows, fewshot = (
        task.spec,
        capped(task.load("validation"), params.evaluate.teacher_max_examples),
        task.load("fewshot"),
    )
    chosen = rule(params, task)
    labels = spec.label_names
    argmax = lambda probs: [labels[top_label(q)] for q in probs]  # noqa: E731
    probs, _ = classify(
        make_teacher(params.teacher), spec, rows, fewshot, params.teacher, params.seed, desc="teacher on validation"
    )
    taught = method_of(chosen).labeller(chosen, spec, fewshot, rows, probs)
    gold, teacher = [r["label"] for r in rows], argmax(probs)
    labelled, reference = (
        argmax(probs if taught is None else taught),
        argmax(fewshot_reference(params, spec, fewshot, rows).tolist()),
    )
    verdict = teacher_verdict(gold, teacher, labelled, reference)
    result = {
        "checked": True,
        "key": check_key(params),
        "method": chosen.method,
        "val_n": len(rows),
        "teacher_accuracy": accuracy(gold, teacher),
        "labeller_accuracy": accuracy(gold, labelled),
        "reference_accuracy": accuracy(gold, reference),
        **verdict,
    }
    write_json(out, result)
    said = (
        f"the teacher adds nothing: {verdict['reason']}; `method: auto` is the few-shot reference"
        if not verdict["teacher_adds"]
        else f"`method: auto` is {chosen.method}"
    )
    print(
        f"teacher_check: on {len(rows)} validation rows: teacher {result['teacher_accuracy']:.4f}, labeller "
        f"{result['labeller_accuracy']:.4f}, fewshot labels alone {result['reference_accuracy']:.4f}: {said}"
    )


def unchecked_because(params: Params, task_dir: str) -> str:
    """Why the check does not apply ('' where it does): a method set by hand, a task without labels (its student
    writes answers), no validation rows, or a label without a fewshot row (no reference to compare with)."""
    if params.method != "auto":
        return f"params.yaml sets method: {params.method}"
    from distill.tasks import load_task

    task = load_task(task_dir, quiet=True)
    if not task.spec.label_names:
        return "the task has no labels to check (its student writes its answers)"
    if not task.path("validation").is_file() or not task.load("validation"):
        return "the task has no validation.jsonl rows"
    missing = set(task.spec.label_names) - {r["label"] for r in task.load("fewshot")}
    if missing:
        return f"fewshot.jsonl has no row labelled {sorted(missing)[0]!r}"
    return ""

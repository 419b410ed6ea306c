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
from distill.core.io import write_json


def run(params: Params, task_dir: str, out: str) -> None:
    from distill.methods.auto import check_key

    task = validation = fewshot = None
    if params.method != "auto":
        why = f"params.yaml sets method: {params.method}"
    else:
        from distill.stages import capped
        from distill.core.tasks import load_task

        task = load_task(task_dir, quiet=True)
        # evaluate's sample of validation (evaluate.teacher_max_examples): each row is an LLM call, and evaluate then
        # finds these answers in the LLM cache
        has_validation = task.path("validation").is_file()
        validation = capped(task.load("validation"), params.evaluate.teacher_max_examples) if has_validation else []
        fewshot = task.load("fewshot")
        why = unchecked_because(task.spec, validation, fewshot)
    if why:
        write_json(out, {"checked": False, "why": why, "key": check_key(params)})
        print(f"teacher_check: not run: {why}")
        return
    from distill.methods.auto import teacher_verdict
    from distill.core.metrics import accuracy

    method, gold, teacher, labelled, reference = labels_on(params, task, validation, fewshot)
    verdict = teacher_verdict(gold, teacher, labelled, reference)
    result = {
        "checked": True,
        "key": check_key(params),
        "method": method,
        "val_n": len(gold),
        "teacher_accuracy": accuracy(gold, teacher),
        "labeller_accuracy": accuracy(gold, labelled),
        "reference_accuracy": accuracy(gold, reference),
        **verdict,
    }
    write_json(out, result)
    said = (
        f"the teacher adds nothing: {verdict['reason']}; `method: auto` is the few-shot reference"
        if not verdict["teacher_adds"]
        else f"`method: auto` is {method}"
    )
    print(
        f"teacher_check: on {len(gold)} validation rows: teacher {result['teacher_accuracy']:.4f}, labeller "
        f"{result['labeller_accuracy']:.4f}, fewshot labels alone {result['reference_accuracy']:.4f}: {said}"
    )


def labels_on(params: Params, task, rows: list[dict], fewshot: list[dict]):
    """What the check compares, on `rows`: (the method the auto rule picks, the gold labels, the teacher's, its
    labeller's (the teacher's where the method has none), the few-shot reference's). benchmarks/teacher_check.py
    measures with it too."""
    from distill.methods.auto import rule
    from distill.methods.registry import method_of
    from distill.prompting.fewshot import top_label
    from distill.students.prior import fewshot_reference
    from distill.synthesis import classify
    from distill.teachers import make_teacher

    spec, chosen = task.spec, rule(params, task)
    argmax = lambda probs: [spec.label_names[top_label(q)] for q in probs]  # noqa: E731
    probs, _ = classify(
        make_teacher(params.teacher), spec, rows, fewshot, params.teacher, params.seed, desc="teacher on validation"
    )
    taught = method_of(chosen).labeller(chosen, spec, fewshot, rows, probs)
    return (
        chosen.method,
        [r["label"] for r in rows],
        argmax(probs),
        argmax(probs if taught is None else taught),
        argmax(fewshot_reference(params, spec, fewshot, rows).tolist()),
    )


def unchecked_because(spec, validation: list[dict], fewshot: list[dict]) -> str:
    """Why the check does not apply to a `method: auto` run ('' where it does): a task without labels (its student
    writes answers), no validation rows, or a label without a fewshot row (no reference to compare with)."""
    if not spec.label_names:
        return "the task has no labels to check (its student writes its answers)"
    if not validation:
        return "the task has no validation.jsonl rows"
    missing = set(spec.label_names) - {r["label"] for r in fewshot}
    if missing:
        return f"fewshot.jsonl has no row labelled {sorted(missing)[0]!r}"
    return ""

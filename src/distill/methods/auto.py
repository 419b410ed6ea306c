"""`method: auto`: which method a task gets when params.yaml does not name one.

A module of its own so that every stage reading `method` can depend on exactly this rule in dvc.yaml: change the
rule and the stages whose method it changes re-run (tests/test_dvc_contract.py checks the dependency).
"""

from __future__ import annotations

from pathlib import Path


def resolve(params, task_dir: str | Path):
    """`method: auto` made concrete for a task: llkd where the task is classification and has unlabelled text, zerogen
    otherwise. Why: the teacher's labels on real text gave the best validation accuracy of the measured methods on
    SST-2 and the best after S3 (whose validation is inflated by the split it mines) on AG News (docs/benchmarks.md);
    on SVAMP (seq2seq) a teacher that cannot solve the problems has nothing to pseudo-label, and ZeroGen's
    written-around-an-equation examples win. Params with a concrete method come back unchanged."""
    if params.method != "auto":
        return params
    from distill.tasks import load_task

    task = load_task(task_dir, quiet=True)
    pool = task.path("unlabeled")
    has_pool = False
    if pool.is_file():
        with pool.open(encoding="utf-8", errors="replace") as f:
            has_pool = any(line.strip() for line in f)
    return params.model_copy(update={"method": "llkd" if has_pool and not task.spec.seq2seq else "zerogen"})


ALPHA = 0.05  # the test level, fixed beforehand (the convention), not chosen on any task


def teacher_verdict(gold: list[str], teacher: list[str], taught: list[str], reference: list[str] | None) -> dict:
    """Does the teacher add anything to what the fewshot labels alone give? On validation rows: `teacher` its labels,
    `taught` the labeller's (what the student learns from: the teacher alone, or LLKD's teacher x prior), `reference`
    the few-shot probe's (None: nothing to compare with). The teacher adds nothing when its labels carry no
    information about the rows (balanced accuracy not above chance at level ALPHA: a permutation test) or when the
    labeller is worse than the reference (a sign test at ALPHA). A labeller merely level with the reference keeps the
    teacher: on AG News the two are level on validation while the student taught on the pool is far above both."""
    from distill.metrics import chance_p_value, worse_p_value

    p_chance = chance_p_value(gold, teacher)
    p_worse = worse_p_value(gold, taught, reference) if reference is not None else 1.0
    if p_chance >= ALPHA:
        reason = f"the teacher's labels are at chance on validation (permutation p = {p_chance:.2f})"
    elif p_worse < ALPHA:
        reason = f"the labeller is worse than the fewshot labels alone on validation (sign test p = {p_worse:.3f})"
    else:
        reason = ""
    return {"teacher_adds": not reason, "teacher_chance_p": p_chance, "labeller_worse_p": p_worse, "reason": reason}

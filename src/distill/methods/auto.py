"""`method: auto`: which method a task gets when params.yaml does not name one.

A module of its own so that every stage reading `method` can depend on exactly this rule in dvc.yaml: change the
rule and the stages whose method it changes re-run (tests/test_dvc_contract.py checks the dependency).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

CHECK = Path("data/work/teacher_check.json")  # the teacher_check stage's verdict, read relative to the repository


def resolve(params, task_dir: str | Path, check: str | Path = CHECK):
    """`method: auto` made concrete for a task: `rule`'s method, unless the teacher_check stage found that the teacher
    adds nothing on this task (its verdict in `check`, for these params): then the few-shot reference, `labelled` on
    fewshot.jsonl with SetFit where the task has one text per row (SetFit embeds single texts). Params with a concrete
    method come back unchanged."""
    if params.method != "auto":
        return params
    from distill.core.tasks import load_task

    task = load_task(task_dir, quiet=True)
    verdict = read_check(check, params)
    if verdict and verdict.get("checked") and not verdict["teacher_adds"]:
        update = {"method": "labelled", "labelled": params.labelled.model_copy(update={"splits": ["fewshot"]})}
        if task.spec.kind == "single":
            update["train"] = params.train.model_copy(update={"recipe": "setfit"})
        return params.model_copy(update=update)
    return rule(params, task)


def rule(params, task):
    """llkd where the task is classification and has unlabelled text, zerogen otherwise. Why: the teacher's labels on
    real text gave the best validation accuracy of the measured methods on SST-2 and were level with S3's on AG News
    at an equal budget (docs/benchmarks.md); on SVAMP (seq2seq) a teacher that cannot solve the problems has nothing
    to pseudo-label, and ZeroGen's examples are checked by their own equation."""
    pool = task.path("unlabeled")
    has_pool = False
    if pool.is_file():
        with pool.open(encoding="utf-8", errors="replace") as f:
            has_pool = any(line.strip() for line in f)
    return params.model_copy(update={"method": "llkd" if has_pool and not task.spec.seq2seq else "zerogen"})


# What the teacher check's verdict depends on: the params dvc.yaml's teacher_check stage declares (DVC re-runs the check
# when one changes), so a verdict is read exactly while it is current; runtime knobs (timeouts, batch sizes) are not.
CHECK_PARAMS = (
    "task",
    "seed",
    "method",
    *(f"teacher.{k}" for k in ("backend", "model", "base_url", "api", "prefix_as", "score_via")),
    *(f"teacher.{k}" for k in ("shots_per_label", "calibration", "max_text_chars")),
    *(f"llkd.{k}" for k in ("fewshot_prior", "prior_weight", "prior_c", "prior_model")),
    *(f"train.{k}" for k in ("model", "pooling", "max_length")),
    *(f"train.setfit_{k}" for k in ("iterations", "batch_size", "lr", "max_steps")),  # llkd.fewshot_prior: setfit
    "evaluate.teacher_max_examples",
)


def check_key(params) -> str:
    """A hash of CHECK_PARAMS' values: a verdict written for other params is not read."""
    dumped = params.model_dump(mode="json")
    values = {}
    for key in CHECK_PARAMS:
        node = dumped
        for part in key.split("."):
            node = node[part]
        values[key] = node
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:16]


def read_check(check: str | Path, params) -> dict | None:
    """The teacher_check stage's verdict for these params, None where there is none (a run outside DVC's order)."""
    try:
        verdict = json.loads(Path(check).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return verdict if verdict.get("key") == check_key(params) else None


ALPHA = 0.05  # the test level, fixed beforehand (the convention), not chosen on any task
# Below this many validation rows a permutation test cannot tell a useful teacher from chance (8 rows: p >= 1/70 even
# for a perfect one), so "at chance" is not concluded and the teacher is kept: absence of evidence is not evidence.
MIN_ROWS = 50


def teacher_verdict(gold: list[str], teacher: list[str], taught: list[str], reference: list[str] | None) -> dict:
    """Does the teacher add anything to what the fewshot labels alone give? On validation rows: `teacher` its labels,
    `taught` the labeller's (what the student learns from: the teacher alone, or LLKD's teacher x prior), `reference`
    the few-shot probe's (None: nothing to compare with). The teacher adds nothing when its labels carry no
    information about the rows (balanced accuracy not above chance at level ALPHA: a permutation test, on at least
    MIN_ROWS rows) or when the labeller is worse than the reference (a sign test at ALPHA). A labeller merely level
    with the reference keeps the teacher: on AG News the two are level on validation while the student taught on the
    pool is far above both."""
    from distill.core.metrics import chance_p_value, worse_p_value

    p_chance = chance_p_value(gold, teacher)
    p_worse = worse_p_value(gold, taught, reference) if reference is not None else 1.0
    at_chance = p_chance >= ALPHA and len(gold) >= MIN_ROWS
    if at_chance:
        reason = f"the teacher's labels are at chance on validation (permutation p = {p_chance:.2f})"
    elif p_worse < ALPHA:
        reason = f"the labeller is worse than the fewshot labels alone on validation (sign test p = {p_worse:.3f})"
    else:
        reason = ""
    return {
        "teacher_adds": not reason,
        "teacher_at_chance": at_chance,
        "teacher_chance_p": p_chance,
        "labeller_worse_p": p_worse,
        "reason": reason,
    }

"""Student, labeller and teacher side by side (issue 41): the default pipeline's three accuracies on the same rows, on
validation (where defaults are chosen) and test (reported), per task. The labeller is what the student was trained to
imitate (LLKD: the teacher x the few-shot prior); a student as good as what taught it is within a point of it.

Runs are `benchmarks/student.py`'s `default` configuration written to their own results file, so they carry today's
metrics (labeller_*, *_teacher_rows) and provenance:

    .venv/bin/python benchmarks/student.py --tasks sst2 cr mpqa ag_news --seeds 0 1 2 --configs default --workers 2 \
        --results benchmarks/results/labeller.jsonl --out /tmp/unused.md
    .venv/bin/python benchmarks/labeller.py          # rewrites the `labeller` block of docs/benchmarks.md

Each task has a row per student encoder: `default, mpnet-base` (the default since issue 41) and `default, minilm-l6`
(the default before), from every run of the default recipe in labeller.jsonl and recipe.jsonl, by its overrides.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline import REPO, replace_block  # noqa: E402
from provenance import checked  # noqa: E402
from runner import load_results  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "labeller.jsonl"
RECIPE = REPO / "benchmarks" / "results" / "recipe.jsonl"  # the student-recipe measurements (issue 41)
COLUMNS = [  # (header, metric): validation first, where choices are made
    ("student val", "val_student_accuracy"),
    ("labeller val", "val_labeller_accuracy"),
    ("teacher val", "val_teacher_accuracy"),
    ("student test", "student_accuracy_teacher_rows"),
    ("labeller test", "labeller_accuracy"),
    ("teacher test", "teacher_accuracy"),
    ("student test macro-F1", "student_macro_f1"),
]


def student_model(row: dict) -> str:
    """The encoder a run's student used: recorded since the default became mpnet-base (runner.exp_run), else its
    override; rows with neither ran before, when the default was minilm-l6."""
    return row.get("train.model") or row.get("overrides", {}).get("train.model") or "minilm-l6"


def recipe(row: dict) -> str | None:
    """The table's row a run belongs to: the default recipe with its student's encoder, and its prior where that is
    not the default's (`llkd.fewshot_prior: setfit`) and its start (`train.init: setfit`); None for other settings
    (the ablations of recipe.jsonl)."""
    overrides = row.get("overrides", {})
    recipe_keys = ("method", "llkd.fewshot_prior", "llkd.prior_weight", "train.init")
    extra = {k: v for k, v in overrides.items() if k not in ("task", "seed", "train.model", *recipe_keys)}
    named = ", ".join(f"{k.split('.')[-1]} {overrides[k]}" for k in recipe_keys if k in overrides)
    return None if extra else f"default, {student_model(row)}" + (f", {named}" if named else "")


def cell(runs: list[dict], key: str) -> str:
    values = [r[key] for r in runs if r.get(key) is not None]
    if not values:
        return "–"
    return f"{statistics.mean(values):.3f}" + (f" ± {statistics.stdev(values):.3f}" if len(values) > 1 else "")


def gap(runs: list[dict], student: str, labeller: str) -> str:
    """The student's mean shortfall against its labeller, in points (negative: the student is above it)."""
    pairs = [(r[student], r[labeller]) for r in runs if r.get(student) is not None and r.get(labeller) is not None]
    return f"{100 * statistics.mean(lab - s for s, lab in pairs):+.1f}" if pairs else "–"


def rows(paths=(RESULTS, RECIPE)) -> list[dict]:
    """Every row of the files, provenance checked."""
    return [row for path in paths for row in checked(load_results(path), path)]


def render(rows: list[dict]) -> str:
    checked(rows)
    by = {}
    for r in rows:
        if name := recipe(r):
            by.setdefault((r["task"], name), []).append(r)
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    # the shipped default first, the default before it next, then the candidates by name (a set's order changes per run)
    names = sorted({name for _, name in by}, key=lambda n: (n != "default, mpnet-base", n != "default, minilm-l6", n))
    head = ["task", "recipe", "seeds", *[h for h, _ in COLUMNS], "labeller − student, val / test (points)", "commit"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for task in tasks:
        for name in names:
            runs = by.get((task, name), [])
            if not runs:
                continue
            gaps = (
                f"{gap(runs, 'val_student_accuracy', 'val_labeller_accuracy')} / "
                f"{gap(runs, 'student_accuracy_teacher_rows', 'labeller_accuracy')}"
            )
            commits = ", ".join(sorted({r["commit"][:7] for r in runs}))
            cells = [task, name, str(len(runs)), *[cell(runs, k) for _, k in COLUMNS], gaps, commits]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", nargs="+", default=[str(RESULTS), str(RECIPE)])
    ap.add_argument("--out", default=str(REPO / "docs" / "benchmarks.md"))
    args = ap.parse_args()
    replace_block(Path(args.out), "labeller", render(rows([Path(p) for p in args.results])))


if __name__ == "__main__":
    main()

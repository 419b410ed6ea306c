"""Student, labeller and teacher side by side (issue 41): the default pipeline's three accuracies on the same rows, on
validation (where defaults are chosen) and test (reported), per task. The labeller is what the student was trained to
imitate (LLKD: the teacher x the few-shot prior); a student as good as what taught it is within a point of it.

Runs are `benchmarks/student.py`'s `default` configuration written to their own results file, so they carry today's
metrics (labeller_*, *_teacher_rows) and provenance:

    .venv/bin/python benchmarks/student.py --tasks sst2 cr mpqa ag_news --seeds 0 1 2 --configs default --workers 2 \
        --results benchmarks/results/labeller.jsonl --out /tmp/unused.md
    .venv/bin/python benchmarks/labeller.py          # rewrites the `labeller` block of docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline import REPO, replace_block  # noqa: E402
from provenance import checked  # noqa: E402
from runner import by_task_config, load_results  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "labeller.jsonl"
COLUMNS = [  # (header, metric): validation first, where choices are made
    ("student val", "val_student_accuracy"),
    ("labeller val", "val_labeller_accuracy"),
    ("teacher val", "val_teacher_accuracy"),
    ("student test", "student_accuracy_teacher_rows"),
    ("labeller test", "labeller_accuracy"),
    ("teacher test", "teacher_accuracy"),
    ("student test macro-F1", "student_macro_f1"),
]


def cell(runs: list[dict], key: str) -> str:
    values = [r[key] for r in runs if r.get(key) is not None]
    if not values:
        return "–"
    return f"{statistics.mean(values):.3f}" + (f" ± {statistics.stdev(values):.3f}" if len(values) > 1 else "")


def gap(runs: list[dict], student: str, labeller: str) -> str:
    """The student's mean shortfall against its labeller, in points (negative: the student is above it)."""
    pairs = [(r[student], r[labeller]) for r in runs if r.get(student) is not None and r.get(labeller) is not None]
    return f"{100 * statistics.mean(lab - s for s, lab in pairs):+.1f}" if pairs else "–"


def render(rows: list[dict]) -> str:
    by, tasks = by_task_config(checked(rows, RESULTS))
    head = ["task", "seeds", *[h for h, _ in COLUMNS], "labeller − student, val / test (points)", "commit"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for task in tasks:
        runs = by.get((task, "default"), [])
        if not runs:
            continue
        gaps = (
            f"{gap(runs, 'val_student_accuracy', 'val_labeller_accuracy')} / "
            f"{gap(runs, 'student_accuracy_teacher_rows', 'labeller_accuracy')}"
        )
        commits = ", ".join(sorted({r["commit"][:7] for r in runs}))
        lines.append(
            "| " + " | ".join([task, str(len(runs)), *[cell(runs, k) for _, k in COLUMNS], gaps, commits]) + " |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default=str(RESULTS))
    ap.add_argument("--out", default=str(REPO / "docs" / "benchmarks.md"))
    args = ap.parse_args()
    replace_block(Path(args.out), "labeller", render(load_results(Path(args.results))))


if __name__ == "__main__":
    main()

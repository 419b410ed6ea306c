"""Does the teacher add anything to the task's fewshot labels? The teacher check of issue 41, on validation only.

For each task and seed, on validation.jsonl (what `method: auto` may decide on; test.jsonl is never read), through
the teacher_check stage's own stages/teacher_check.labels_on: the teacher's calibrated few-shot labels (evaluate's
scoring), the labeller the default student learns from (the auto rule's method's: LLKD's teacher times the few-shot
prior), and the few-shot reference (the probe on the fewshot rows alone, students/prior.fewshot_reference). Beside
their accuracies: the teacher's balanced accuracy and the permutation p-value of "its labels carry no information"
(metrics.chance_p_value), and the sign-test p-value of "the labeller is worse than the reference"
(metrics.worse_p_value); then what the pipeline's rule decides (methods/auto.teacher_verdict). Rows with provenance go to benchmarks/results/teacher_check.jsonl and render the
`teacher_check` block of docs/benchmarks.md. The teacher's answers come from the LLM cache where a run asked them.

    .venv/bin/python benchmarks/teacher_check.py --tasks sst2 ag_news cr mpqa rte --seeds 0 1 2
    .venv/bin/python benchmarks/teacher_check.py --render-only
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline import REPO, replace_block  # noqa: E402
from provenance import checked, git_state, provenance  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "teacher_check.jsonl"


def measure(task_name: str, seed: int) -> dict:
    """The pipeline's own check (stages/teacher_check.labels_on, methods/auto.teacher_verdict) on every validation
    row, with the figures beside it that the table shows."""
    from distill.config import load_params
    from distill.methods.auto import teacher_verdict
    from distill.core.metrics import accuracy, balanced_accuracy, macro_f1
    from distill.stages.teacher_check import labels_on
    from distill.core.tasks import load_task

    params = load_params(REPO / "params.yaml").model_copy(update={"task": task_name, "seed": seed})
    task = load_task(REPO / "data" / "tasks" / task_name, quiet=True)
    labels = task.spec.label_names
    t0 = time.perf_counter()
    _, gold, teacher, taught, reference = labels_on(params, task, task.load("validation"), task.load("fewshot"))
    out = {
        "task": task_name,
        "seed": seed,
        "val_n": len(gold),
        "majority": max(gold.count(y) for y in set(gold)) / len(gold),
        "teacher_accuracy": accuracy(gold, teacher),
        "teacher_macro_f1": macro_f1(gold, teacher, labels),
        "teacher_balanced_accuracy": balanced_accuracy(gold, teacher),
        "labeller_accuracy": accuracy(gold, taught),
        "labeller_macro_f1": macro_f1(gold, taught, labels),
        "reference_accuracy": accuracy(gold, reference),
        "reference_macro_f1": macro_f1(gold, reference, labels),
        "gain": accuracy(gold, taught) - accuracy(gold, reference),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    return {**out, **teacher_verdict(gold, teacher, taught, reference)}


def render(rows: list[dict]) -> str:
    """One line per task: means over seeds, and how often the rule kept the teacher."""
    checked(rows, RESULTS)
    latest = {(r["task"], r["seed"]): r for r in rows}
    order = ["sst2", "ag_news", "cr", "mpqa", "rte"]
    tasks = sorted({t for t, _ in latest}, key=lambda t: (order.index(t) if t in order else len(order), t))
    mean = lambda runs, k: statistics.mean(r[k] for r in runs)  # noqa: E731
    lines = [
        "Validation only (test.jsonl is not read). Per task, means over seeds: accuracy of the teacher, the labeller "
        "(teacher x few-shot prior) and the few-shot reference (the probe on fewshot.jsonl alone); the teacher's "
        "balanced accuracy and the largest permutation p-value of 'no information' over seeds; the labeller minus the "
        "reference; the smallest sign-test p-value of 'labeller worse'; and the rule's decision per seed. Rows: "
        "`benchmarks/results/teacher_check.jsonl`.",
        "",
        "| task | seeds | majority | teacher acc | teacher balanced acc | teacher p (chance), max | labeller acc | "
        "reference acc | labeller − reference (points) | p (labeller worse), min | decision by seed | commit |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for task in tasks:
        runs = [r for (t, _), r in sorted(latest.items()) if t == task]
        lines.append(
            f"| {task} | {len(runs)} | {runs[0]['majority']:.3f} | {mean(runs, 'teacher_accuracy'):.3f} | "
            f"{mean(runs, 'teacher_balanced_accuracy'):.3f} | {max(r['teacher_chance_p'] for r in runs):.4f} | "
            f"{mean(runs, 'labeller_accuracy'):.3f} | {mean(runs, 'reference_accuracy'):.3f} | "
            f"{100 * mean(runs, 'gain'):+.1f} | {min(r['labeller_worse_p'] for r in runs):.3f} | "
            f"{', '.join('teacher' if r['teacher_adds'] else 'reference' for r in runs)} | "
            f"{', '.join(sorted({r['commit'][:7] for r in runs}))} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", nargs="+", default=["sst2", "ag_news", "cr", "mpqa", "rte"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--threads", type=int, default=2, help="torch threads (%(default)s)")
    ap.add_argument("--results", default=str(RESULTS), help="JSONL of rows, appended (%(default)s)")
    ap.add_argument("--render-only", action="store_true", help="only rewrite the docs block from --results")
    args = ap.parse_args()
    results = Path(args.results)
    if not args.render_only:
        import torch

        torch.set_num_threads(args.threads)
        state = git_state(REPO)
        for task in args.tasks:
            for seed in args.seeds:
                row = measure(task, seed)
                over = {"task": task, "seed": seed}
                resolved = {**yaml.safe_load((REPO / "params.yaml").read_text()), **over}
                row.update(provenance(REPO, resolved, over, args.threads, None, state))
                with results.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                print(json.dumps({k: row[k] for k in list(row)[:17]}), flush=True)
    rows = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    replace_block(REPO / "docs" / "benchmarks.md", "teacher_check", render(rows))


if __name__ == "__main__":
    main()

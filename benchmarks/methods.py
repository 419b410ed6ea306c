"""Compare methods at the same generation budget, per task and seed (not a test; hours on 2 cores).

Each configuration is a `dvc exp run` in a copy of the repository, all with the same student recipe (params.yaml's
`train` section), so the table compares data, not schedules. The budget is the number of samples *requested*
from the teacher: ZeroGen asks budget/labels per label; GOLD spreads the same budget over its iterations (3/4
training block, 1/4 validation block); S3 spends half on seed data and up to a quarter per round on
extrapolations; LLKD pseudo-labels a pool of `budget` unlabelled rows. The table replaces the `methods` block of
docs/benchmarks.md, as mean ± std over seeds. Results of the first student recipe (early stopping on a synthetic
hold-out, CLS pooler, 256 samples) are kept in benchmarks/results/methods_recipe_v1.jsonl (their table, the
`methods-v1` block: render_recipe_v1). A row without provenance (provenance.py) is refused by both renderers.

    .venv/bin/python benchmarks/methods.py --tasks sst2 ag_news --seeds 0 1 2 --budget 1024 --workers 2
    .venv/bin/python benchmarks/methods.py --render-only
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline import REPO, replace_block  # noqa: E402
from provenance import checked, footnote, seeds_cell  # noqa: E402
from runner import by_task_config, common_args, fmt, load_results, n_labels, run_jobs  # noqa: E402

CONFIGS = {  # name -> params overrides (on top of the budget settings); table and run order
    "zerogen": {"method": "zerogen"},
    "gold": {"method": "gold"},
    "s3": {"method": "s3"},
    "llkd": {"method": "llkd"},
    "llkd, all pseudo-labels": {"method": "llkd", "llkd.selection": "all"},
    "llkd, random subset": {"method": "llkd", "llkd.selection": "random"},  # llkd.fraction: see same_size()
    "gold, no feedback": {"method": "gold", "gold.feedback": "none"},
    "gold, CE loss": {"method": "gold", "gold.loss": "ce"},
    "real labels: fewshot": {"method": "labelled", "labelled.splits": "[fewshot]"},
    "SetFit: fewshot": {"method": "labelled", "labelled.splits": "[fewshot]", "train.recipe": "setfit"},
    "real labels: fewshot + validation": {"method": "labelled", "labelled.splits": "[fewshot,validation]"},
}
RESULTS = REPO / "benchmarks" / "results" / "methods.jsonl"


def budget_overrides(task: str, budget: int, iterations: int) -> dict:
    labels = n_labels(task)
    per_iter = budget // iterations
    return {
        "generate.n_per_label": budget // labels,
        "gold.train_per_iter": per_iter - per_iter // 4,
        "gold.val_per_iter": per_iter // 4,
        "s3.seed_per_label": budget // 2 // labels,
        "s3.max_extrapolations": budget // 4,
        "llkd.pool_size": budget,
    }


def same_size(results: Path, task: str, seed: int) -> dict:
    """The random baseline keeps as many pool rows as LLKD's adaptive selection used (distinct rows ever selected) in
    the same (task, seed); the queue runs "llkd" before it in that unit. Without an LLKD result: the params default."""
    used = [
        r["distinct_selected_fraction"]
        for r in load_results(results)
        if (r["task"], r["seed"], r["config"]) == (task, seed, "llkd") and "distinct_selected_fraction" in r
    ]
    return {"llkd.fraction": round(used[-1], 4)} if used else {}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common_args(ap, CONFIGS, RESULTS, ["sst2", "ag_news"])
    ap.add_argument("--budget", type=int, default=1024, help="samples requested from the teacher per run")
    ap.add_argument("--iterations", type=int, default=4, help="GOLD iterations (must match params.yaml)")
    ap.add_argument("--block", default="methods", help="the <!-- NAME:begin/end --> block of --out to rewrite")
    ap.add_argument(
        "--set", nargs="*", default=[], help="extra params for every run, e.g. evaluate.teacher_max_examples=1000"
    )
    args = ap.parse_args()
    results = Path(args.results)
    if not args.render_only:
        done = {(r["task"], r["seed"], r["config"]) for r in load_results(results) if r["budget"] == args.budget}
        jobs = [(t, s, c) for s in args.seeds for c in args.configs for t in args.tasks if (t, s, c) not in done]

        def overrides(job):
            task, seed, name = job
            over = {
                "task": task,
                "seed": seed,
                "train.model": "minilm-l6",  # every row's student (the default until issue 41's mpnet): re-runs compare
                **budget_overrides(task, args.budget, args.iterations),
                **dict(s.split("=", 1) for s in args.set),
                **CONFIGS[name],
            }
            return {**over, **(same_size(results, task, seed) if name == "llkd, random subset" else {})}

        run_jobs(
            jobs, overrides, results, args.workers, record=lambda job: {"budget": args.budget}, threads=args.threads
        )
    renderer = render_recipe_v1 if args.block == "methods-v1" else render
    replace_block(Path(args.out), args.block, renderer(load_results(results), results))


def render(rows: list[dict], results: Path = RESULTS) -> str:
    by, tasks = by_task_config(checked(rows, results))
    budgets = sorted({r["budget"] for r in rows})
    shown = results.resolve().relative_to(REPO) if results.resolve().is_relative_to(REPO) else results
    lines = [
        f"Budget {'/'.join(map(str, budgets))} requested samples (LLKD: pool rows) per run, embedded teacher (SmolLM2-135M), "
        "student MiniLM-L6 with the default recipe (params.yaml `train`); mean ± std over the runs counted in the seeds "
        f"column. Raw runs: `{shown}`. Reproduce: `.venv/bin/python benchmarks/methods.py "
        f"--budget {'/'.join(map(str, budgets))} --workers 2` (then `--render-only`). Wall time is the whole "
        "`dvc exp run` on a shared 2-core machine (two runs at once), with what the cache already held.",
        "",
        "| task | method | seeds | student accuracy | student macro-F1 | student val acc | training rows | pool used (LLKD) | "
        "teacher accuracy (few-shot) | teacher val acc | wall (min) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for task in tasks:
        for name in CONFIGS:
            runs = by.get((task, name), [])
            if not runs:
                continue
            col = lambda k: fmt([r.get(k) for r in runs])  # noqa: E731 - '–' where no run has k
            lines.append(
                f"| {task} | {name} | {seeds_cell(runs)} | {col('student_accuracy')} | "
                f"{col('student_macro_f1')} | {col('val_student_accuracy')} | {statistics.mean(r['n_samples'] or 0 for r in runs):.0f} | "
                f"{col('distinct_selected_fraction')} | "
                f"{col('teacher_accuracy')} | {col('val_teacher_accuracy')} | "
                f"{statistics.mean(r['wall_s'] for r in runs) / 60:.1f} |"
            )
    return "\n".join(lines + curves(by, tasks, CONFIGS) + footnote(rows))


def curves(by: dict, tasks: list[str], configs) -> list[str]:
    """The per-iteration table (GOLD, S3) of the configurations shown, mean over the seeds that have a curve."""
    lines = [
        "",
        "Per-iteration curves (mean over seeds): validation accuracy of the iteration's student on the real "
        "validation.jsonl, and mean energy of the iteration's validation block (higher = more "
        "out-of-distribution).",
        "",
        "| task | method | iteration | seeds | val accuracy | mean energy | training rows so far |",
        "|---|---|---|---|---|---|---|",
    ]
    for task in tasks:
        for name in configs:
            if name.endswith("CE loss"):  # same iterations as without: only the final student's loss differs
                continue
            runs = [r for r in by.get((task, name), []) if r.get("curve")]
            for it in sorted({row["iteration"] for r in runs for row in r["curve"]}, key=int):
                pts = [(r, row) for r in runs for row in r["curve"] if row["iteration"] == it]
                num = lambda k: [float(p[k]) for _, p in pts if p.get(k) not in (None, "")]  # noqa: E731
                rows_so_far = statistics.mean(num("total")) if num("total") else 0
                lines.append(
                    f"| {task} | {name} | {it} | {seeds_cell([r for r, _ in pts])} | "
                    f"{fmt(num('val_accuracy'))} | {fmt(num('energy_mean'))} | {rows_so_far:.0f} |"
                )
    return lines


# The first recipe's configurations (methods_recipe_v1.jsonl), in its table's order: the four main methods, then
# the ablations, some only run with it (GOLD's 50 final epochs, 2 refresh epochs; LLKD's fixed 25 % random subset).
CONFIGS_V1 = (
    "zerogen",
    "gold",
    "real labels: fewshot",
    "real labels: fewshot + validation",
    "llkd",
    "llkd, all pseudo-labels",
    "llkd, random subset",
    "s3",
    "gold, no feedback",
    "gold, CE loss",
    "gold, 50 final epochs",
    "gold, 2 refresh epochs",
    "gold, 2 refresh epochs, no feedback",
    "gold, 2 refresh epochs, CE loss",
    "llkd, random 25 %",
)


def render_recipe_v1(rows: list[dict], results: Path = RESULTS) -> str:
    """The `methods-v1` block: the first recipe's table as it was rendered then (fewer columns than today's: its runs
    recorded no validation metrics)."""
    by, tasks = by_task_config(checked(rows, results))
    budgets = sorted({r["budget"] for r in rows})
    lines = [
        f"Budget {'/'.join(map(str, budgets))} requested samples per run, embedded teacher (SmolLM2-135M), "
        "student MiniLM-L6; mean ± std over the runs counted in the seeds column. Raw runs: "
        "`benchmarks/results/methods_recipe_v1.jsonl`. Reproduce (on the recipe of commit f9cb7ec): "
        "`.venv/bin/python benchmarks/methods.py --workers 2 --budget 256 --results "
        "benchmarks/results/methods_recipe_v1.jsonl --set evaluate.teacher_max_examples=1000` (then "
        "`--render-only`): the teacher's accuracy is on the first 1000 test rows (all of SST-2's and RTE's; "
        "AG News has 2000), the students' on the whole test set.",
        "",
        "| task | method | seeds | student accuracy | student macro-F1 | training rows | pool used (LLKD) | "
        "teacher accuracy (few-shot) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for task in tasks:
        for name in CONFIGS_V1:
            runs = by.get((task, name), [])
            if runs:
                col = lambda k: fmt([r.get(k) for r in runs])  # noqa: E731
                lines.append(
                    f"| {task} | {name} | {seeds_cell(runs)} | {col('student_accuracy')} | "
                    f"{col('student_macro_f1')} | {statistics.mean(r['n_samples'] for r in runs):.0f} | "
                    f"{col('distinct_selected_fraction')} | {col('teacher_accuracy')} |"
                )
    return "\n".join(lines + curves(by, tasks, CONFIGS_V1) + footnote(rows))


if __name__ == "__main__":
    main()

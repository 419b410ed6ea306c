"""Is the student worth it? The default pipeline against its teacher and against SetFit on the same few labels,
soft vs hard targets, generation budgets and student backbones (issue 13; not a test, hours on 2 cores).

Every configuration is a `dvc exp run` of the shipped params.yaml with a few overrides, per task and seed
(runner.py). Validation accuracy (`val_*`, validation.jsonl) is recorded beside test accuracy: defaults are
chosen on it; test is only reported. Results: benchmarks/results/student.jsonl; tables: the `student` block of
docs/benchmarks.md.

    .venv/bin/python benchmarks/student.py --tasks sst2 ag_news --seeds 0 1 2 --workers 2
    .venv/bin/python benchmarks/student.py --render-only
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


def zerogen(budget: int, **extra):
    return lambda task: {"method": "zerogen", "generate.n_per_label": budget // n_labels(task), **extra}


def llkd(pool: int, **extra):
    """LLKD as in the paper: the teacher's pseudo-labels alone (the rows measured before the few-shot prior existed)."""
    return lambda task: {
        "method": "llkd",
        "llkd.pool_size": pool,
        "llkd.pool_chars": 0,
        "llkd.fewshot_prior": "none",
        **extra,
    }


# x a probe on fewshot.jsonl, as measured on 2026-12-05: on MiniLM embeddings (the default's probe is now mpnet's)
PRIOR = {"llkd.fewshot_prior": "probe", "llkd.prior_model": "minilm-l6"}


SETFIT = {"method": "labelled", "labelled.splits": "[fewshot]", "train.recipe": "setfit"}
OLD_DEFAULT = {"method": "zerogen"}  # the default until 2026-12-05 (now `method: auto`: LLKD on these tasks)
CONFIGS = {  # name -> overrides (or task -> overrides); run order: the acceptance rows first
    "default": lambda task: {},
    "default, llkd pool 1k": lambda task: {"llkd.pool_size": 1000},  # the budget curve's other point, with the prior
    "default, llkd pool 5k": lambda task: {"llkd.pool_size": 5000, "llkd.pool_chars": 0},  # ... and its far end
    # the default until llkd.pool_chars (2026-12-05): 2500 rows whatever their length (AG News: ~590k characters)
    "default, pool 2500 rows (no character cap)": lambda task: {"llkd.pool_chars": 0},
    "zerogen 128/label (old default)": lambda task: OLD_DEFAULT,
    "SetFit: fewshot": lambda task: SETFIT,
    "zerogen 1k": zerogen(1024),
    "llkd 5k": llkd(5000),
    "llkd 2.5k": llkd(2500),
    "llkd 2.5k + fewshot prior": llkd(2500, **PRIOR),
    "llkd 2.5k + fewshot prior, float32 teacher": llkd(
        2500, **PRIOR, **{"teacher.dtype": "float32"}
    ),  # the runs above used it
    "zerogen 1k, hard labels": zerogen(1024, **{"train.targets": "hard"}),
    "llkd 5k, hard labels": llkd(5000, **{"train.targets": "hard"}),
    "zerogen 256": zerogen(256),
    "llkd 1k": llkd(1000),
    "llkd 1k, all pseudo-labels": llkd(1000, **{"llkd.selection": "all"}),
    "zerogen 4k": zerogen(4096),
    "default, mpnet-base": lambda task: {"train.model": "mpnet-base"},
    "zerogen 128/label, mpnet-base (old default)": lambda task: {**OLD_DEFAULT, "train.model": "mpnet-base"},
    "SetFit: fewshot, mpnet-base": lambda task: {**SETFIT, "train.model": "mpnet-base"},
    # where the student loses what its labeller knows (issue 41): LLKD's selection, the soft targets
    "default, every pool row (llkd.selection: all)": lambda task: {"llkd.selection": "all"},
    "default, hard targets": lambda task: {"train.targets": "hard"},
    # the candidate recipe: today's default with the bigger student (grouped batches, unlike `default, mpnet-base`)
    "default, mpnet student": lambda task: {"train.model": "mpnet-base"},
    # the next candidate: the default with SetFit (mpnet) on the fewshot rows as LLKD's prior instead of the probe, at
    # the weight the labeller table (`fewshot_prior_rows`) rates best for it on validation
    "default, setfit prior": lambda task: {
        "train.model": "mpnet-base",
        "llkd.fewshot_prior": "setfit",
        "llkd.prior_weight": 3.0,
    },
    # ... with LLKD forced where the teacher check would fall back to SetFit: does the student beat its reference?
    "default, setfit prior, method llkd": lambda task: {
        "method": "llkd",
        "train.model": "mpnet-base",
        "llkd.fewshot_prior": "setfit",
        "llkd.prior_weight": 3.0,
    },
    # ... and the student's encoder starting from that SetFit fit (train.init: setfit): SetFit's fine-tune, then the
    # labeller's pool distilled into it (an idea issue 41 lists); LLKD forced, to measure the student everywhere
    "default, setfit prior and start, method llkd": lambda task: {
        "method": "llkd",
        "train.model": "mpnet-base",
        "train.init": "setfit",
        "llkd.fewshot_prior": "setfit",
        "llkd.prior_weight": 3.0,
    },
}
# Every row but these was measured with random batches, before `train.group_by_length` (on by default since commit
# 6cf6610): pinned off, a re-run reproduces the batches they trained on (the same shuffle, the same rng calls).
GROUPED = {
    "default",
    "default, llkd pool 1k",
    "default, llkd pool 5k",
    "default, pool 2500 rows (no character cap)",
    "default, every pool row (llkd.selection: all)",
    "default, hard targets",
    "default, mpnet student",
    "default, setfit prior",
    "default, setfit prior, method llkd",
    "default, setfit prior and start, method llkd",
}


def random_batches(overrides):
    return lambda task: {**overrides(task), "train.group_by_length": False}


def pinned_student(overrides):
    """Every row without a train.model override was measured with minilm-l6, the default until the mpnet student
    (issue 41): pinned, a re-run measures what its configuration's rows measured."""
    return lambda task: {"train.model": "minilm-l6", **overrides(task)}


CONFIGS = {name: pinned_student(f if name in GROUPED else random_batches(f)) for name, f in CONFIGS.items()}
RESULTS = REPO / "benchmarks" / "results" / "student.jsonl"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common_args(ap, CONFIGS, RESULTS, ["sst2", "ag_news"])
    args = ap.parse_args()
    results = Path(args.results)
    if not args.render_only:
        done = {(r["task"], r["seed"], r["config"]) for r in load_results(results)}
        jobs = [(t, s, c) for c in args.configs for s in args.seeds for t in args.tasks if (t, s, c) not in done]
        run_jobs(
            jobs,
            lambda job: {"task": job[0], "seed": job[1], **CONFIGS[job[2]](job[0])},
            results,
            args.workers,
            threads=args.threads,
        )
    replace_block(Path(args.out), "student", render(load_results(results)))


def render(rows: list[dict]) -> str:
    """The `student` block; a row without provenance (provenance.py) is refused, a backfilled one marked †."""
    by, tasks = by_task_config(checked(rows, "benchmarks/results/student.jsonl"))
    col = lambda runs, k, d=3: fmt([r.get(k) for r in runs], d)  # noqa: E731
    minutes = lambda runs, k: fmt([r[k] / 60 for r in runs if r.get(k) is not None], 1)  # noqa: E731
    lines = [
        "Embedded teacher (SmolLM2-135M, few-shot, calibrated), student MiniLM-L6 unless said; mean ± std over seeds "
        "(the seeds column). `val` = validation.jsonl (200 rows; what defaults were chosen on), `test` = test.jsonl "
        "(reported only). Wall = the whole `dvc exp run` on a shared 2-core machine, two runs at once, with what the LLM "
        "cache already held; teacher s = the teacher's compute to produce the training data (first run, from the "
        "cache's records; – where the answers predate those records). Raw runs: `benchmarks/results/student.jsonl`.",
        "",
        "| task | configuration | seeds | student test acc | teacher test acc | student val acc | teacher val acc | "
        "student macro-F1 | training rows | wall (min) | teacher s | train s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for task in tasks:
        for name in CONFIGS:
            runs = by.get((task, name), [])
            if runs:
                lines.append(
                    f"| {task} | {name} | {seeds_cell(runs)} | {col(runs, 'student_accuracy')} | "
                    f"{col(runs, 'teacher_accuracy')} | "
                    f"{col(runs, 'val_student_accuracy')} | {col(runs, 'val_teacher_accuracy')} | "
                    f"{col(runs, 'student_macro_f1')} | {statistics.mean(r.get('n_samples') or 0 for r in runs):.0f} | "
                    f"{minutes(runs, 'wall_s')} | {fmt([r.get('teacher_seconds') or None for r in runs], 0)} | {col(runs, 'train_seconds', 0)} |"
                )
    return "\n".join(lines + footnote(rows))


if __name__ == "__main__":
    main()

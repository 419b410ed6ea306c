"""Compare methods at the same generation budget, per task and seed (not a test; hours on 2 cores).

Each configuration is a `dvc exp run` in a copy of the repository. The budget is the number of samples
*requested* from the teacher: ZeroGen asks budget/labels per label; GOLD spreads the same budget over its
iterations (3/4 training block, 1/4 validation block); S3 spends half on seed data and up to a quarter per
round on extrapolations. Every finished run is appended to a JSONL file at once (a stopped benchmark resumes
where it stopped, and a partial one still renders); the table replaces the `methods` block of
docs/benchmarks.md, as mean ± std over seeds.

Each worker has its own repository copy; the LLM cache is one per (task, seed) under .cache/bench/ and no two
workers run the same (task, seed) at once, so the teacher's few-shot baseline and LLKD's pseudo-labels of a
(task, seed) are paid once, also across benchmark runs.
With --workers 2 each worker uses one torch thread: on 2 cores that overlaps the single-threaded parts
(DVC, tokenisation, start-up) of one run with the other's matrix products. Accuracy is what this measures;
for timings see benchmarks/pipeline.py.

    .venv/bin/python benchmarks/methods.py --tasks sst2 ag_news rte --seeds 0 1 2 --budget 256 --workers 2 \
        --set evaluate.teacher_max_examples=1000
    .venv/bin/python benchmarks/methods.py --render-only
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline import REPO, copy_repo, replace_block  # noqa: E402

CONFIGS = {  # name -> params overrides (on top of the budget settings); table order (run order: rank())
    "zerogen": {"method": "zerogen"},
    "gold": {"method": "gold"},
    "real labels: fewshot": {"method": "labelled", "labelled.splits": "[fewshot]"},
    "real labels: fewshot + validation": {"method": "labelled", "labelled.splits": "[fewshot,validation]"},
    "llkd": {"method": "llkd"},
    "llkd, all pseudo-labels": {"method": "llkd", "llkd.selection": "all"},
    "llkd, random subset": {"method": "llkd", "llkd.selection": "random"},  # llkd.fraction: see same_size()
    "s3": {"method": "s3"},
    "gold, no feedback": {"method": "gold", "gold.feedback": "none"},
    "gold, CE loss": {"method": "gold", "gold.loss": "ce"},
    "gold, 50 final epochs": {"method": "gold", "gold.final_epochs": 50},  # the code's final schedule (SCE learns slowly)
    # The first default (2 refresh epochs), kept for the record: its iteration students stayed near chance on
    # validation.jsonl and their energies were flat, which is why the default became 8.
    "gold, 2 refresh epochs": {"method": "gold", "gold.refresh_epochs": 2},
    "gold, 2 refresh epochs, no feedback": {"method": "gold", "gold.refresh_epochs": 2, "gold.feedback": "none"},
    "gold, 2 refresh epochs, CE loss": {"method": "gold", "gold.refresh_epochs": 2, "gold.loss": "ce"},
    # The first random baseline, a fixed 25 % of the pool rather than as many rows as LLKD used (kept for the record).
    "llkd, random 25 %": {"method": "llkd", "llkd.selection": "random", "llkd.fraction": 0.25},
}
RESULTS = REPO / "benchmarks" / "results" / "methods.jsonl"
CACHES = REPO / ".cache" / "bench"  # one LLM cache per (task, seed), kept between benchmark runs (git-ignored)
CORE = ("zerogen", "gold", "real labels: fewshot", "real labels: fewshot + validation")
REQUIRED = CORE + ("llkd", "llkd, all pseudo-labels", "llkd, random subset", "s3")  # the issues' tables, 3 seeds each
_lock = threading.Lock()


def rank(job: tuple[str, int, str], seeds: list[int], tasks: list[str]) -> tuple:
    """Run order, so that a benchmark stopped early is still useful: seed 0 of everything on the tasks where the
    embedded teacher is above chance; seed 1 of the configurations the tables need; then GOLD vs ZeroGen (and the
    cheap real-label references) complete on every task, RTE included (teacher at chance there: every method is);
    then seed 2 of S3 and LLKD; the code's final GOLD schedule; S3 and LLKD on RTE; the ablations' other seeds."""
    task, seed, name = job
    s = seeds.index(seed)
    if name not in REQUIRED:
        tier = 5 if name == "gold, 50 final epochs" and s == 0 and task != "rte" else 0 if s == 0 and task != "rte" else 7
    elif task == "rte":
        tier = 2 if name in CORE else 6
    else:
        tier = s if s < 2 else 2 if name in CORE else 3
    return tier, s, tasks.index(task), list(CONFIGS).index(name)


def budget_overrides(task: str, budget: int, iterations: int) -> dict:
    labels = len(yaml.safe_load((REPO / f"data/tasks/{task}/task.yaml").read_text())["labels"])
    per_iter = budget // iterations
    return {"generate.n_per_label": budget // labels, "gold.train_per_iter": per_iter - per_iter // 4,
            "gold.val_per_iter": per_iter // 4, "s3.seed_per_label": budget // 2 // labels, "s3.max_extrapolations": budget // 4}


def same_size(results: Path, task: str, seed: int) -> dict:
    """The random baseline keeps as many pool rows as LLKD's adaptive selection used (distinct rows ever selected) in
    the same (task, seed); the queue runs "llkd" before it in that unit. Without an LLKD result: the params default."""
    used = [r["distinct_selected_fraction"] for r in load_results(results)
            if (r["task"], r["seed"], r["config"]) == (task, seed, "llkd") and "distinct_selected_fraction" in r]
    return {"llkd.fraction": round(used[-1], 4)} if used else {}


def exp_run(repo: Path, env: dict, overrides: dict) -> dict:
    # `dvc exp run -S` edits params.yaml in the workspace and leaves it edited: without this, a run would inherit
    # the previous run's settings (e.g. gold.feedback=none) wherever it does not set them itself.
    subprocess.run(["git", "checkout", "--", "params.yaml"], cwd=repo, env=env, check=True, capture_output=True)
    args = ["dvc", "exp", "run"]
    for k, v in overrides.items():
        args += ["-S", f"{k}={v}"]
    t0 = time.time()
    r = subprocess.run(args, cwd=repo, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{r.stderr[-2000:]}")
    out = {**json.loads((repo / "metrics/metrics.json").read_text()), "wall_s": round(time.time() - t0)}
    out["n_samples"] = json.loads((repo / "metrics/data.json").read_text())["n_samples"]
    train = json.loads((repo / "metrics/train.json").read_text())
    out.update({k: v for k, v in train.items() if k in ("selected_fraction", "distinct_selected_fraction", "n_train")})
    history = repo / "plots/train_history.json"
    if overrides["method"] == "llkd" and history.exists():  # rows trained on per epoch, as a share of the pool
        fractions = [h["selected_fraction"] for h in json.loads(history.read_text()) if "selected_fraction" in h]
        out["mean_selected_fraction"] = statistics.mean(fractions) if fractions else None
    if "llkd.fraction" in overrides:
        out["llkd.fraction"] = overrides["llkd.fraction"]
    curve = repo / "plots/iterations.tsv"
    if overrides["method"] in ("gold", "s3") and curve.exists():
        with curve.open() as f:
            out["curve"] = list(csv.DictReader(f, delimiter="\t"))
    return out


def load_results(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


class Queue:
    """Jobs in rank order; a worker takes the first whose (task, seed) no other worker is running, so the
    teacher's baseline and LLKD's pseudo-labels of a (task, seed) are computed once, into that unit's cache."""

    def __init__(self, jobs: list[tuple[str, int, str]]):
        self.jobs, self.busy, self.lock = list(jobs), set(), threading.Lock()

    def take(self, done_unit: tuple | None) -> tuple | None:
        with self.lock:
            self.busy.discard(done_unit)
            job = next((j for j in self.jobs if j[:2] not in self.busy), None)
            if job is None:  # only busy units left: wait for them to be free (or end when none remain)
                return ("wait",) if self.jobs else None
            self.jobs.remove(job)
            self.busy.add(job[:2])
            return job


def worker(queue: Queue, args, threads: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        repo = Path(d) / "repo"
        copy_repo(repo)
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "TQDM_DISABLE": "1",
               "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
               "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@localhost", "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@localhost"}
        for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "bench"]):
            subprocess.run(cmd, cwd=repo, env=env, check=True, capture_output=True)
        unit = None
        while (job := queue.take(unit)) is not None:
            if job == ("wait",):
                unit = None
                time.sleep(5)
                continue
            task, seed, name = job
            unit = (task, seed)
            cache = CACHES / f"{task}-{seed}"
            cache.mkdir(parents=True, exist_ok=True)
            (repo / ".cache").unlink(missing_ok=True)
            (repo / ".cache").symlink_to(cache, target_is_directory=True)
            over = {"task": task, "seed": seed, **budget_overrides(task, args.budget, args.iterations),
                    **dict(s.split("=", 1) for s in args.set), **CONFIGS[name]}
            if name == "llkd, random subset":
                over.update(same_size(Path(args.results), task, seed))
            try:
                m = exp_run(repo, env, over)
            except RuntimeError as e:  # one failed run is reported, the rest go on
                print(f"FAILED {task} seed {seed} {name}: {e}", flush=True)
                continue
            with _lock, Path(args.results).open("a") as f:
                f.write(json.dumps({"task": task, "seed": seed, "config": name, "budget": args.budget, **m}) + "\n")
            print(f"[{time.strftime('%H:%M:%S')}] {task} seed {seed} {name}: student {m['student_accuracy']:.4f} "
                  f"teacher {m['teacher_accuracy']:.4f} n {m['n_samples']} ({m['wall_s']} s)", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", nargs="+", default=["sst2", "ag_news", "rte"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--budget", type=int, default=256, help="samples requested from the teacher per run")
    ap.add_argument("--iterations", type=int, default=4, help="GOLD iterations (must match params.yaml)")
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS), help=f"subset of: {', '.join(CONFIGS)}")
    ap.add_argument("--set", nargs="*", default=[], help="extra params for every run, e.g. evaluate.teacher_max_examples=1000")
    ap.add_argument("--workers", type=int, default=1, help="parallel (task, seed) units; each gets 2/workers torch threads")
    ap.add_argument("--results", default=str(RESULTS), help="JSONL of finished runs (appended; runs in it are skipped)")
    ap.add_argument("--out", default=str(REPO / "docs" / "benchmarks.md"))
    ap.add_argument("--render-only", action="store_true", help="only rewrite the table from --results")
    args = ap.parse_args()
    Path(args.results).parent.mkdir(parents=True, exist_ok=True)
    if not args.render_only:
        done = {(r["task"], r["seed"], r["config"]) for r in load_results(Path(args.results)) if r["budget"] == args.budget}
        jobs = [(t, s, c) for s in args.seeds for t in args.tasks for c in args.configs if (t, s, c) not in done]
        queue = Queue(sorted(jobs, key=lambda j: rank(j, args.seeds, args.tasks)))
        threads = max(1, (os.cpu_count() or 2) // args.workers)
        with ThreadPoolExecutor(args.workers) as pool:
            for f in [pool.submit(worker, queue, args, threads) for _ in range(args.workers)]:
                f.result()
    replace_block(Path(args.out), "methods", render(load_results(Path(args.results))))


def fmt(values: list[float]) -> str:
    if not values:
        return "–"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}" if len(values) > 1 else f"{values[0]:.3f}"


def render(rows: list[dict]) -> str:
    by: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        by.setdefault((r["task"], r["config"]), []).append(r)
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    budgets = sorted({r["budget"] for r in rows})
    lines = [f"Budget {'/'.join(map(str, budgets))} requested samples per run, embedded teacher (SmolLM2-135M), student MiniLM-L6; "
             f"mean ± std over the runs counted in the seeds column. Raw runs: `benchmarks/results/methods.jsonl`. Reproduce: "
             f"`.venv/bin/python benchmarks/methods.py --workers 2 --set evaluate.teacher_max_examples=1000` (then "
             "`--render-only`): the teacher's accuracy is on the first 1000 test rows (all of SST-2's and RTE's; AG News "
             "has 2000), the students' on the whole test set.", "",
             "| task | method | seeds | student accuracy | student macro-F1 | training rows | pool used (LLKD) | teacher accuracy (few-shot) |",
             "|---|---|---|---|---|---|---|---|"]
    for task in tasks:
        for name in CONFIGS:
            runs = by.get((task, name), [])
            if not runs:
                continue
            pool = fmt([r["distinct_selected_fraction"] for r in runs if "distinct_selected_fraction" in r])
            lines.append(f"| {task} | {name} | {len(runs)} | {fmt([r['student_accuracy'] for r in runs])} | "
                         f"{fmt([r['student_macro_f1'] for r in runs])} | {statistics.mean(r['n_samples'] for r in runs):.0f} | "
                         f"{pool} | {fmt([r['teacher_accuracy'] for r in runs])} |")
    lines += ["", "Per-iteration curves (mean over seeds): validation accuracy of the iteration's student on the real "
              "validation.jsonl, and mean energy of the iteration's validation block (higher = more out-of-distribution).", "",
              "| task | method | iteration | seeds | val accuracy | mean energy | training rows so far |", "|---|---|---|---|---|---|---|"]
    for task in tasks:
        for name in CONFIGS:
            if name.endswith("CE loss"):  # same iterations as without: only the final student's loss differs
                continue
            curves = [r["curve"] for r in by.get((task, name), []) if r.get("curve")]
            for it in sorted({row["iteration"] for c in curves for row in c}, key=int):
                pts = [row for c in curves for row in c if row["iteration"] == it]
                num = lambda k: [float(p[k]) for p in pts if p.get(k) not in (None, "")]  # noqa: E731
                lines.append(f"| {task} | {name} | {it} | {len(pts)} | {fmt(num('val_accuracy'))} | {fmt(num('energy_mean'))} | "
                             f"{statistics.mean(num('total')) if num('total') else 0:.0f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()

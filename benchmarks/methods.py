"""Compare methods at the same generation budget, per task and seed (not a test; hours on 2 cores).

Each configuration runs as a `dvc exp run` in one fresh copy of the repository (the LLM cache is shared
across configurations, so identical requests are not paid twice). The budget is the number of samples
*requested* from the teacher: ZeroGen asks budget/labels per label; GOLD spreads the same budget over its
iterations (3/4 training block, 1/4 validation block). Results replace the `methods` block of
docs/benchmarks.md, as mean ± std over seeds.

    .venv/bin/python benchmarks/methods.py --tasks sst2 ag_news rte --seeds 0 1 2 --budget 256
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline import REPO, copy_repo, replace_block  # noqa: E402

CONFIGS = {  # name -> params overrides (on top of the budget settings)
    "zerogen": {"method": "zerogen"},
    "gold": {"method": "gold"},
    "gold, no feedback": {"method": "gold", "gold.feedback": "none"},
    "gold, CE loss": {"method": "gold", "gold.loss": "ce"},
    "s3": {"method": "s3"},
    "llkd": {"method": "llkd"},
    "llkd, all pseudo-labels": {"method": "llkd", "llkd.selection": "all"},
    "llkd, random subset": {"method": "llkd", "llkd.selection": "random"},
    "real labels: fewshot": {"method": "labelled", "labelled.splits": "[fewshot]"},
    "real labels: fewshot + validation": {"method": "labelled", "labelled.splits": "[fewshot,validation]"},
}


def budget_overrides(task: str, budget: int, iterations: int) -> dict:
    labels = len(yaml.safe_load((REPO / f"data/tasks/{task}/task.yaml").read_text())["labels"])
    per_iter = budget // iterations
    return {"generate.n_per_label": budget // labels, "gold.train_per_iter": per_iter - per_iter // 4,
            "gold.val_per_iter": per_iter // 4, "s3.seed_per_label": (budget - 2 * 64) // labels, "s3.max_extrapolations": 64}


def exp_run(repo: Path, env: dict, overrides: dict) -> dict:
    args = ["dvc", "exp", "run"]
    for k, v in overrides.items():
        args += ["-S", f"{k}={v}"]
    r = subprocess.run(args, cwd=repo, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{r.stderr[-2000:]}")
    metrics = json.loads((repo / "metrics/metrics.json").read_text())
    data = json.loads((repo / "metrics/data.json").read_text())
    return {**metrics, "n_samples": data["n_samples"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", nargs="+", default=["sst2", "ag_news", "rte"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--budget", type=int, default=256, help="samples requested from the teacher per run")
    ap.add_argument("--iterations", type=int, default=4, help="GOLD iterations (must match params.yaml)")
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS))
    ap.add_argument("--out", default=str(REPO / "docs" / "benchmarks.md"))
    args = ap.parse_args()
    results: dict[tuple[str, str], list[dict]] = {}
    t0 = time.time()
    with tempfile.TemporaryDirectory() as d:
        repo = Path(d) / "repo"
        copy_repo(repo)
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "TQDM_DISABLE": "1",
               "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@localhost", "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@localhost"}
        for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "bench"]):
            subprocess.run(cmd, cwd=repo, env=env, check=True, capture_output=True)
        for task in args.tasks:
            for seed in args.seeds:
                for name in args.configs:
                    over = {"task": task, "seed": seed, **budget_overrides(task, args.budget, args.iterations), **CONFIGS[name]}
                    m = exp_run(repo, env, over)
                    results.setdefault((task, name), []).append(m)
                    print(f"[{time.time() - t0:.0f}s] {task} seed {seed} {name}: student {m['student_accuracy']:.4f} "
                          f"teacher {m['teacher_accuracy']:.4f} n {m['n_samples']}", flush=True)
    replace_block(Path(args.out), "methods", render(results, args))


def fmt(values: list[float]) -> str:
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}" if len(values) > 1 else f"{values[0]:.4f}"


def render(results: dict, args) -> str:
    lines = [f"Measured {time.strftime('%Y-%m-%d')}, budget {args.budget} requested samples per run, seeds {args.seeds}, "
             f"embedded teacher. Reproduce: `.venv/bin/python benchmarks/methods.py --tasks {' '.join(args.tasks)} "
             f"--seeds {' '.join(map(str, args.seeds))} --budget {args.budget}`.", "",
             "| task | method | student accuracy | student macro-F1 | kept samples | teacher accuracy (few-shot) |",
             "|---|---|---|---|---|---|"]
    for (task, name), runs in results.items():
        lines.append(f"| {task} | {name} | {fmt([r['student_accuracy'] for r in runs])} | {fmt([r['student_macro_f1'] for r in runs])} | "
                     f"{statistics.mean(r['n_samples'] for r in runs):.0f} | {fmt([r['teacher_accuracy'] for r in runs])} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()

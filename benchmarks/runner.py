"""Shared machinery of the accuracy benchmarks (methods.py, student.py): one `dvc exp run` per (task, seed, config).

Each worker has its own repository copy and its own git history; the LLM cache is the repository's own
(`.cache/llm.sqlite`, shared through a symlink, SQLite WAL), so nothing any benchmark asked the teacher is asked
twice, and no two workers run the same (task, seed) before its first run has ended (the teacher's baseline is
computed once). Every finished run is appended to a JSONL file at once: a stopped benchmark resumes where it
stopped, and a partial one still renders. With --workers 2 each worker uses one torch thread. Every row carries its
provenance (provenance.py): the source commit when the worker copied it, the run's resolved params (hash) and
overrides, CPU, threads, and the MLflow run id.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

import yaml

from distill.report import mean_std as fmt  # noqa: F401 - '0.812 ± 0.004', shared with `distill compare`

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline import REPO, copy_repo  # noqa: E402
from provenance import git_state, mlflow_run_id, provenance  # noqa: E402

CACHE = REPO / ".cache"
_lock = threading.Lock()
Job = tuple[str, int, str]  # (task, seed, config name)


def n_labels(task: str) -> int:
    spec = REPO / f"data/tasks/{task}/task.yaml"
    return len(yaml.safe_load(spec.read_text())["labels"])


def exp_run(repo: Path, env: dict, overrides: dict) -> dict:
    """One experiment; its metrics (metrics.json + data size, training stats, wall time, LLM data cost)."""
    # `dvc exp run -S` edits params.yaml in the workspace and leaves it edited: restore it so that a run never
    # inherits the previous run's settings.
    subprocess.run(["git", "checkout", "--", "params.yaml"], cwd=repo, env=env, check=True, capture_output=True)
    args = ["dvc", "exp", "run"]
    for k, v in overrides.items():
        args += ["-S", f"{k}={v}"]
    t0 = time.time()
    r = subprocess.run(args, cwd=repo, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{r.stderr[-2000:]}")
    read = lambda p: json.loads((repo / p).read_text()) if (repo / p).exists() else {}  # noqa: E731
    out = {**read("metrics/metrics.json"), "wall_s": round(time.time() - t0)}
    # the student the run trained (the default changed from minilm-l6 to mpnet-base, issue 41): rows say which
    out["train.model"] = yaml.safe_load((repo / "params.yaml").read_text())["train"]["model"]
    out["n_samples"] = read("metrics/data.json").get("n_samples")
    train = read("metrics/train.json")
    out.update(
        {
            k: v
            for k, v in train.items()
            if k in ("selected_fraction", "distinct_selected_fraction", "n_train", "train_seconds")
        }
    )
    for stage in ("generate", "llkd_label"):  # what producing the data cost, even when it came from the cache
        m = read(f"metrics/{stage}.json")
        if m.get("llm.data_answers"):
            out["teacher_seconds"] = round(m.get("llm.data_seconds", 0.0), 1)
            out["teacher_tokens"] = m.get("llm.data_completion_tokens", 0)
    history = repo / "plots/train_history.json"
    if overrides.get("method") == "llkd" and history.exists():  # rows trained on per epoch, as a share of the pool
        fractions = [h["selected_fraction"] for h in json.loads(history.read_text()) if "selected_fraction" in h]
        out["mean_selected_fraction"] = statistics.mean(fractions) if fractions else None
    curve = repo / "plots/iterations.tsv"
    if overrides.get("method") in ("gold", "s3") and curve.exists():
        import csv

        with curve.open() as f:
            out["curve"] = list(csv.DictReader(f, delimiter="\t"))
    return out


def load_results(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def by_task_config(rows: list[dict]) -> tuple[dict[tuple[str, str], list[dict]], list[str]]:
    """Finished runs grouped by (task, config), and the tasks in the order they first appear."""
    by: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        by.setdefault((r["task"], r["config"]), []).append(r)
    return by, list(dict.fromkeys(r["task"] for r in rows))


class Queue:
    """Jobs in order; a worker takes the first whose (task, seed) no other worker is running, until that unit's first
    run has ended: the first run fills the cache with what every later run of the seed reuses (the teacher's
    baseline), and after it the unit's runs go in parallel, so a seed with several configs keeps both workers busy."""

    def __init__(self, jobs: list[Job]):
        self.jobs, self.busy, self.warm, self.lock = list(jobs), set(), set(), threading.Lock()

    def take(self, done_unit: tuple | None, ok: bool = True) -> Job | tuple | None:
        """The next job; `done_unit` is the unit whose run just ended, warm only if that run succeeded (a failed
        first run may have left the cache empty, so the unit's next run goes alone again)."""
        with self.lock:
            if done_unit is not None:
                self.busy.discard(done_unit)
                if ok:
                    self.warm.add(done_unit)
            job = next((j for j in self.jobs if j[:2] in self.warm or j[:2] not in self.busy), None)
            if job is None:  # only busy units left: wait for them to be free (or end when none remain)
                return ("wait",) if self.jobs else None
            self.jobs.remove(job)
            self.busy.add(job[:2])
            return job


def worker(
    queue: Queue, overrides_of: Callable[[Job], dict], results: Path, threads: int, record: Callable[[Job], dict]
) -> None:
    with tempfile.TemporaryDirectory() as d:
        repo = Path(d) / "repo"
        state = git_state(REPO)  # the code this worker runs: a commit made while the benchmark runs is not it
        copy_repo(repo)
        env = {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "TQDM_DISABLE": "1",
            "OMP_NUM_THREADS": str(threads),
            "MKL_NUM_THREADS": str(threads),
            "DISTILL_LLM_CACHE": os.environ.get("DISTILL_LLM_CACHE") or str(CACHE / "llm.sqlite"),
            "GIT_AUTHOR_NAME": "b",
            "GIT_AUTHOR_EMAIL": "b@localhost",
            "GIT_COMMITTER_NAME": "b",
            "GIT_COMMITTER_EMAIL": "b@localhost",
        }
        env.pop("MLFLOW_TRACKING_URI", None)
        for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "bench"]):
            subprocess.run(cmd, cwd=repo, env=env, check=True, capture_output=True)
        unit, ok = None, True
        while (job := queue.take(unit, ok)) is not None:
            if job == ("wait",):
                unit = None
                time.sleep(5)
                continue
            task, seed, name = job
            unit, ok = (task, seed), False
            over = overrides_of(job)
            try:
                m = exp_run(repo, env, over)
            except RuntimeError as e:  # one failed run is reported, the rest go on
                print(f"FAILED {task} seed {seed} {name}: {e}", flush=True)
                continue
            ok = True
            # `dvc exp run -S` left params.yaml edited: it holds the params this run resolved to
            prov = provenance(REPO, repo / "params.yaml", over, threads, mlflow_run_id(repo), state)
            with _lock, results.open("a") as f:
                f.write(json.dumps({"task": task, "seed": seed, "config": name, **record(job), **m, **prov}) + "\n")
            print(
                f"[{time.strftime('%H:%M:%S')}] {task} seed {seed} {name}: student {m['student_accuracy']:.4f} "
                f"teacher {m['teacher_accuracy']:.4f} n {m['n_samples']} ({m['wall_s']} s)",
                flush=True,
            )


def run_jobs(
    jobs: list[Job], overrides_of, results: Path, workers: int, record=lambda job: {}, threads: int | None = None
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    results.parent.mkdir(parents=True, exist_ok=True)
    queue = Queue(jobs)
    threads = threads or max(1, (os.cpu_count() or 2) // workers)
    with ThreadPoolExecutor(workers) as pool:
        for f in [pool.submit(worker, queue, overrides_of, results, threads, record) for _ in range(workers)]:
            f.result()


def common_args(ap, configs: dict, results: Path, tasks: list[str]) -> None:
    """The options every accuracy benchmark takes."""
    ap.add_argument("--tasks", nargs="+", default=tasks)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--configs", nargs="+", default=list(configs), help=f"subset of: {', '.join(configs)}")
    ap.add_argument(
        "--workers", type=int, default=1, help="parallel (task, seed) units; each gets cores/workers torch threads"
    )
    ap.add_argument(
        "--threads", type=int, help="torch threads per worker instead (to leave cores to another benchmark)"
    )
    ap.add_argument("--results", default=str(results), help="JSONL of finished runs (appended; runs in it are skipped)")
    ap.add_argument("--out", default=str(REPO / "docs" / "benchmarks.md"))
    ap.add_argument("--render-only", action="store_true", help="only rewrite the table(s) from --results")

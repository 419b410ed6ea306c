"""What answering costs with the student instead of the LLM (issue 43): accuracy, throughput, latency, memory and size
per model and task (test.jsonl), CPU only (not a test: ~40 min on 2 idle cores, + ~2 h to train the students).

Each model runs in its own subprocess (`--one MODEL`: its peak RSS is its own), --threads threads (torch, onnxruntime
intra-op): accuracy on the test split, rows/s at batch 64 (one pass after a warm-up batch), latency at batch 1 (p50/p95
of single-row calls on distinct rows, after warm-up), peak RSS, size on disk. `teacher`: the embedded LLM few-shot as
the evaluate stage scores it (synthesis.classify, fewshot.jsonl, params.teacher), on --llm-rows test rows (evaluate.
capped's rule), with an empty LLM cache in every phase (the project's would make it free). `labeller`: the teacher x
LLKD's few-shot prior (the llkd labeller hook), its mpnet probe fitted once before timing and checked against the hook.
`setfit`: SetFit on fewshot.jsonl (train.recipe: setfit), trained here first. `student`, `mpnet`: trained students
(--student/--mpnet TASK=PATH, or --train), PyTorch fp32, and `-onnx` / `-int8`: their ONNX exports (deploy/export.py).

Rows, with provenance (provenance.py), are appended to benchmarks/results/inference.jsonl; the latest per (task,
model) renders the `inference` block of docs/benchmarks.md and docs/inference.svg. The full run (--train keeps its
students in .cache/bench-students/ and reuses them; the pipeline's teacher calls come from the project's LLM cache):

    .venv/bin/python benchmarks/inference.py --tasks sst2 ag_news --train minilm mpnet
    .venv/bin/python benchmarks/inference.py --render-only

This script trains, exports and prepares the models and runs one child process per model; what a child measures is
inference_measure.py's, the table and the plot inference_report.py's.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from inference_measure import LLM, MODELS, STUDENTS, measure  # noqa: E402
from inference_report import draw, render  # noqa: E402
from pipeline import REPO, copy_repo, replace_block  # noqa: E402
from provenance import git_state, mlflow_run_id, provenance  # noqa: E402

RESULTS, KEEP = REPO / "benchmarks" / "results" / "inference.jsonl", REPO / ".cache" / "bench-students"
MODELS_OF_STUDENTS = [m for m in MODELS if m.split("-")[0] in STUDENTS]
SETFIT = {"method": "labelled", "labelled.splits": "[fewshot]", "train.recipe": "setfit"}


# -- the run: the students trained, exported; one child process per model ---------------------------------------------
def with_overrides(params: dict, overrides: dict) -> dict:
    """params.yaml's dict with `-S key.sub=value` overrides applied (string values read as YAML, as DVC does)."""
    out = json.loads(json.dumps(params))
    for key, value in overrides.items():
        *path, last = key.split(".")
        node = functools.reduce(lambda d, k: d.setdefault(k, {}), path, out)
        node[last] = yaml.safe_load(value) if isinstance(value, str) else value
    return out


def train_students(tasks: list[str], kinds: list[str], seed: int, keep: Path, extra: dict) -> dict:
    """(task, model) -> student folder: the default pipeline (`dvc exp run`, runner.exp_run) in a temporary copy of the
    repository; its models/student, params.yaml, registered.json and metrics kept under `keep` (reused when there)."""
    from runner import CACHE, exp_run

    out = {}
    for task in tasks:
        for kind in kinds:
            dst = keep / f"{task}-{kind}-seed{seed}"
            out[(task, "student" if kind == "minilm" else "mpnet")] = dst / "models" / "student"
            if (dst / "trained.json").is_file():
                continue
            over = {
                "task": task,
                "seed": seed,
                "train.model": "mpnet-base" if kind == "mpnet" else "minilm-l6",
                **extra,
            }
            print(f"[{time.strftime('%H:%M:%S')}] training {task} {kind}: dvc exp run {over}", flush=True)
            with tempfile.TemporaryDirectory() as d:
                repo, state = Path(d) / "repo", git_state(REPO)
                copy_repo(repo)
                env = {
                    **os.environ,
                    "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
                    "TQDM_DISABLE": "1",
                    **{
                        f"GIT_{who}_{f}": v
                        for who in ("AUTHOR", "COMMITTER")
                        for f, v in (("NAME", "b"), ("EMAIL", "b@localhost"))
                    },
                    "DISTILL_LLM_CACHE": os.environ.get("DISTILL_LLM_CACHE") or str(CACHE / "llm.sqlite"),
                }
                env.pop("MLFLOW_TRACKING_URI", None)
                for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "bench"]):
                    subprocess.run(cmd, cwd=repo, env=env, check=True, capture_output=True)
                metrics = exp_run(repo, env, over)
                shutil.rmtree(dst, ignore_errors=True)
                for f in ("models/student", "params.yaml", "data/work/registered.json", "metrics/metrics.json"):
                    (dst / f).parent.mkdir(parents=True, exist_ok=True)
                    (shutil.copytree if (repo / f).is_dir() else shutil.copy2)(repo / f, dst / f)
                (dst / "trained.json").write_text(json.dumps({"overrides": over, **state, "metrics": metrics}))
            print(f"  student accuracy {metrics.get('student_accuracy')}, {metrics.get('wall_s')} s: {dst}", flush=True)
    return out


def prepare(key: str, task: str, folders: dict, work: Path, args, base: dict) -> tuple:
    """(path, params, overrides, MLflow run, extra fields) of a model: SetFit trained, a student exported, once a run.
    A student's params and run are those of the pipeline that trained it where its folder sits in that pipeline's
    repository (models/student, params.yaml beside), else today's params for the task."""
    over = {"task": task, "seed": args.seed}
    if key in LLM:
        return None, with_overrides(base, over), over, None, {}
    if key == "setfit":
        over.update(SETFIT, **({"train.setfit_iterations": args.setfit_iterations} if args.setfit_iterations else {}))
        dst = work / f"{task}-setfit"
        import torch
        from distill.config import load_params
        from distill.kinds import kind_of
        from distill.core.tasks import load_task

        torch.set_num_threads(args.threads)
        cfg = load_params(REPO / "params.yaml").train
        cfg = cfg.model_copy(
            update={"recipe": "setfit", "setfit_iterations": args.setfit_iterations or cfg.setfit_iterations}
        )
        t, t0 = load_task(REPO / "data" / "tasks" / task, quiet=True), time.perf_counter()
        model, _ = kind_of(t.spec).train(t.spec, t.load("fewshot"), cfg, args.seed)
        extra = {"train_s": round(time.perf_counter() - t0, 1)}
        model.save_pretrained(dst)
        return dst, with_overrides(base, over), over, None, extra
    from distill.deploy.export import DEFAULT_OPSET, export, folder_sha256

    kind = key.split("-")[0]
    src = folders[(task, kind)]
    root, extra = src.parent.parent, {"student_path": str(src), "student_sha256": folder_sha256(src)}
    params, run = with_overrides(base, over), None
    if src.parts[-2:] == ("models", "student") and (root / "params.yaml").is_file():
        params, run, over = yaml.safe_load((root / "params.yaml").read_text()), mlflow_run_id(root), {}
        if (root / "trained.json").is_file():  # --train's: the overrides and the code it trained with
            trained = json.loads((root / "trained.json").read_text())
            over, extra["student_trained_at"] = trained["overrides"], {k: trained[k] for k in ("commit", "dirty")}
    if key == kind:
        return src, params, over, run, extra
    dst = work / f"{task}-{kind}-onnx"
    if not dst.exists():
        from distill.students.model import load_student

        tmp = dst.with_suffix(".partial")
        tmp.mkdir()
        export(load_student(src), tmp, DEFAULT_OPSET, True, {"model": str(src), "sha256": extra["student_sha256"]})
        tmp.rename(dst)
    return dst, params, over, run, extra


def child(key: str, task: str, path: Path | None, args, work: Path) -> dict:
    out, n = work / f"{task}-{key}.json", str(args.threads)
    opts = {
        "--one": key,
        "--tasks": task,
        "--json": out,
        "--path": path,
        "--rows": args.rows,
        "--seed": args.seed,
        "--llm-rows": args.llm_rows,
        "--latency-calls": args.latency_calls,
        "--batch": args.batch,
        "--threads": n,
    }
    cmd = [sys.executable, __file__, *(x for k, v in opts.items() if v is not None for x in (k, str(v)))]
    env = {
        **os.environ,
        "OMP_NUM_THREADS": n,
        "MKL_NUM_THREADS": n,
        "RAYON_NUM_THREADS": n,
        "TQDM_DISABLE": "1",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "DISTILL_LLM_CACHE": str(work / f"{task}-{key}.sqlite"),
    }
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError((r.stderr or r.stdout)[-2000:])
    return json.loads(out.read_text())


def run(args) -> None:
    state, base = git_state(REPO), yaml.safe_load((REPO / "params.yaml").read_text())
    folders = {
        (task, kind): Path(p)
        for kind, pairs in (("student", args.student), ("mpnet", args.mpnet))
        for task, p in (pair.split("=", 1) for pair in pairs)
    }
    if args.train:
        extra = dict(kv.split("=", 1) for kv in args.train_set)
        folders.update(train_students(args.tasks, args.train, args.seed, Path(args.keep), extra))
    results = Path(args.results)
    results.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-inference-") as d:
        for task in args.tasks:
            for key in [m for m in args.models if (task, m.split("-")[0]) in folders or m not in MODELS_OF_STUDENTS]:
                t0 = time.time()
                try:
                    path, params, over, run_id, extra = prepare(key, task, folders, Path(d), args, base)
                    row = child(key, task, path, args, Path(d))
                except Exception as e:  # one failed model is reported, the others go on
                    print(f"FAILED {task} {key}: {e}", flush=True)
                    continue
                row.update(
                    extra,
                    date=time.strftime("%Y-%m-%d"),
                    wall_s=round(time.time() - t0),
                    **provenance(REPO, params, over, args.threads, run_id, state),
                )
                with results.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                print(
                    f"[{time.strftime('%H:%M:%S')}] {task} {key}: accuracy {row['accuracy']:.4f} "
                    f"({row['accuracy_rows']} rows), {row['rows_per_s']:.1f} rows/s, "
                    f"p50 {row['latency_p50_ms']:.1f} ms, {row['peak_rss_mb']:.0f} MB "
                    f"(load average {row['load_avg_1m']:.1f})",
                    flush=True,
                )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", nargs="+", default=["sst2", "ag_news"], help="tasks (data/tasks/; %(default)s)")
    ap.add_argument(
        "--models",
        nargs="+",
        default=list(MODELS),
        choices=list(MODELS),
        metavar="MODEL",
        help="of: %(choices)s (default: all; a student's where its folder is given or trained)",
    )
    ap.add_argument(
        "--student",
        action="append",
        default=[],
        metavar="TASK=PATH",
        help="a default student's folder (e.g. a run's models/student); repeat per task",
    )
    ap.add_argument(
        "--mpnet",
        action="append",
        default=[],
        metavar="TASK=PATH",
        help="a `train.model: mpnet-base` student's folder; repeat per task",
    )
    ap.add_argument(
        "--train",
        nargs="+",
        choices=["minilm", "mpnet"],
        default=[],
        help="train these students first "
        "(`dvc exp run` of the defaults in a repository copy; mpnet: -S train.model=mpnet-base), "
        "kept in --keep and reused",
    )
    ap.add_argument(
        "--train-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an extra -S override for --train (quick checks: not for the docs)",
    )
    ap.add_argument("--keep", default=str(KEEP), help="where --train keeps its students (%(default)s)")
    ap.add_argument("--seed", type=int, default=0, help="params seed: teacher demos, SetFit, --train (%(default)s)")
    ap.add_argument("--rows", type=int, help="test rows per model at most (default: the whole split)")
    ap.add_argument("--llm-rows", type=int, default=256, help="test rows of the LLM rows, at most (%(default)s)")
    ap.add_argument("--latency-calls", type=int, default=200, help="single-row calls timed per model (%(default)s)")
    ap.add_argument("--batch", type=int, default=64, help="throughput's batch size, not the LLM's (%(default)s)")
    ap.add_argument("--threads", type=int, default=2, help="torch / onnxruntime intra-op threads (%(default)s)")
    ap.add_argument("--setfit-iterations", type=int, help="SetFit's pair iterations (default: params.train's)")
    ap.add_argument("--results", default=str(RESULTS), help="JSONL of measured rows, appended (%(default)s)")
    ap.add_argument(
        "--doc",
        default=str(REPO / "docs" / "benchmarks.md"),
        help="markdown whose `inference` block is rewritten (%(default)s)",
    )
    ap.add_argument("--plot", default=str(REPO / "docs" / "inference.svg"), help="the plot, .svg or .png (%(default)s)")
    ap.add_argument("--render-only", action="store_true", help="only rewrite the block and the plot from --results")
    ap.add_argument("--one", choices=list(MODELS), metavar="MODEL", help="internal: measure one model in this process")
    ap.add_argument("--path", help="internal, with --one: the model's folder (a student or its ONNX export)")
    ap.add_argument("--json", help="internal, with --one: the file the row is written to")
    args = ap.parse_args()
    if args.one:
        row = measure(args.one, args.tasks[0], Path(args.path) if args.path else None, args)
        Path(args.json).write_text(json.dumps(row))
        return
    if not args.render_only:
        run(args)
    results = Path(args.results)
    rows = [json.loads(line) for line in results.read_text().splitlines() if line.strip()] if results.exists() else []
    doc, plot = Path(args.doc), Path(args.plot)
    text = render(rows, os.path.relpath(plot.resolve(), doc.resolve().parent))  # refuses rows without provenance first
    draw(rows, plot)
    replace_block(doc, "inference", text)
    print(f"{args.results} -> {doc} (inference block), {plot}")


if __name__ == "__main__":
    main()

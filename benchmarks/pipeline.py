"""Benchmark the default pipeline (`make run`: `method: auto`) end to end, per task, on this machine (not a test).

For each task: a fresh copy of the repository (empty LLM cache), `dvc repro` one stage at a time with the
default params.yaml (only `task` changed), timing each stage and its peak RSS (os.wait4 on the stage's
process tree); then, in this process, raw batched `model.generate` on the same generation prompts for a
tokens/s reference. Each task's result is appended, with its provenance (provenance.py), to
benchmarks/results/pipeline.jsonl, and the `pipeline` block of docs/benchmarks.md (or --block) is rendered from the
rows of that block, the latest per task.

    .venv/bin/python benchmarks/pipeline.py --tasks sst2 ag_news
    .venv/bin/python benchmarks/pipeline.py --render-only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "pipeline.jsonl"
# The stages of the default method (`method: auto`: ZeroGen's prompts + generate, or LLKD's llkd_label; the other
# method's stages run as no-ops in a second) and the shared ones. GOLD's and S3's stages are no-ops here, untimed.
STAGES = [
    "check_task",
    "teacher_check",  # method: auto's teacher check (since issue 41; rows before it time it with the next stage)
    "resolve_method",  # the running method and its code hash (since issue 42)
    "prompts",
    "generate",
    "llkd_label",
    "assemble",
    "train",
    "evaluate",
    "register",
]


def copy_repo(dst: Path) -> None:
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    for f in files:
        if (REPO / f).is_file() and not f.startswith(("data/work/", "models/", "metrics/", "plots/")):
            (dst / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / f, dst / f)


def timed(cmd: list[str], cwd: Path, env: dict) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of a command and the processes it waited for."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr.read().decode()[-2000:]}")
    return wall, usage.ru_maxrss / 1024


def raw_generate_tps(repo: Path, task: str, n: int = 64, batch: int = 32) -> float:
    """Tokens/s of plain HF `model.generate` (sampling, left padding) on the pipeline's own prompts."""
    import torch

    from distill.teachers.base import GenRequest
    from distill.teachers.local import LocalBackend

    rows = [json.loads(l) for l in (repo / "data/work/prompts.jsonl").read_text().splitlines()[:n]]
    backend = LocalBackend("smollm2-135m-instruct")
    model, tok = backend._load()
    tok.padding_side = "left"
    g = yaml.safe_load((repo / "params.yaml").read_text())["generate"]
    tokens, seconds = 0, 0.0
    for s in range(0, len(rows), batch):
        texts = [
            backend.render(GenRequest(tuple(map(tuple, r["messages"])), r["prefix"], r["seed"]))
            for r in rows[s : s + batch]
        ]
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(
                **enc,
                do_sample=True,
                top_p=g["top_p"],
                temperature=g["temperature"],
                top_k=0,
                max_new_tokens=g["max_new_tokens"],
                pad_token_id=tok.pad_token_id,
            )
        seconds += time.perf_counter() - t0
        new = out[:, enc["input_ids"].shape[1] :]
        stops = backend.stop_ids()
        for row in new.tolist():  # real tokens: up to and including the first stop token
            cut = next((i + 1 for i, t in enumerate(row) if t in stops), len(row))
            tokens += cut
    return tokens / seconds


def bench(task: str) -> dict:
    from provenance import git_state, mlflow_run_id, provenance

    with tempfile.TemporaryDirectory() as d:
        repo = Path(d) / "repo"
        state = git_state(REPO)
        copy_repo(repo)
        params = yaml.safe_load((repo / "params.yaml").read_text())
        params["task"] = task
        (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        env = {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "TQDM_DISABLE": "1",
            "GIT_AUTHOR_NAME": "b",
            "GIT_AUTHOR_EMAIL": "b@localhost",
            "GIT_COMMITTER_NAME": "b",
            "GIT_COMMITTER_EMAIL": "b@localhost",
        }
        for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "bench"]):
            subprocess.run(cmd, cwd=repo, env=env, check=True, capture_output=True)
        result = {"task": task, "stages": {}}
        for stage in STAGES[:3]:  # check_task, teacher_check, resolve_method: what every method's stages read
            result["stages"][stage] = timed(["dvc", "repro", "-s", stage], repo, env)
        for stage in ["gold_start", "gold_iter", "s3_seed", "s3_round", "pool_random"]:  # other methods': no-ops
            timed(["dvc", "repro", "-s", stage], repo, env)
        for stage in STAGES[3:]:
            result["stages"][stage] = timed(["dvc", "repro", "-s", stage], repo, env)
        read = lambda p: json.loads((repo / p).read_text())  # noqa: E731
        gen, pool, met = read("metrics/generate.json"), read("metrics/llkd_label.json"), read("metrics/metrics.json")
        result.update(
            method=read("data/work/registered.json")["method"],
            teacher_accuracy=met["teacher_accuracy"],
            teacher_uncalibrated=met["teacher_accuracy_uncalibrated"],
            student_accuracy=met["student_accuracy"],
            student_f1=met["student_macro_f1"],
            n_test=met["n_test"],
            val_student=met.get("val_student_accuracy"),
            val_teacher=met.get("val_teacher_accuracy"),
            data=(
                f"{pool['pool']} pooled → {pool['pseudo_labelled']} pseudo-labelled"
                if "pool" in pool
                else f"{gen['requested']} → {gen['kept']} generated"
            ),
            n_train=read("metrics/data.json").get("n_samples"),
        )
        if "requested" in gen:  # ZeroGen: the pipeline's generation speed against raw model.generate
            result.update(gen_tps=gen["llm.tokens_per_s"], raw_tps=raw_generate_tps(repo, task))
        threads = int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1)  # the stages' torch threads
        result.update(
            date=time.strftime("%Y-%m-%d"),
            cpu=cpu_name(),
            **provenance(REPO, repo / "params.yaml", {"task": task}, threads, mlflow_run_id(repo), state),
        )
        return result


def cpu_name() -> str:
    """The CPU model, and whether it computes bfloat16 natively: the teacher's precision, hence its speed, follows it."""
    from distill.core.devices import cpu_bf16_native

    info = Path("/proc/cpuinfo")
    lines = info.read_text().splitlines() if info.exists() else []
    names = [l.split(":", 1)[1].strip() for l in lines if l.startswith("model name")]
    bf16 = "bf16 native: teacher in bfloat16" if cpu_bf16_native() else "no native bf16: teacher in float32"
    return f"{names[0] if names else platform.processor() or platform.machine()}, {bf16}"


def render(results: list[dict]) -> str:
    """The block, from rows of one machine (the first row's date and CPU head it); a row without provenance is
    refused."""
    from provenance import checked

    first = checked(results, RESULTS)[0]
    lines = [
        f"Measured {first['date']} on {first['machine']} ({first['cpu']}), "
        "default `params.yaml` with only `task` changed, empty LLM cache. Reproduce: "
        "`.venv/bin/python benchmarks/pipeline.py --tasks " + " ".join(r["task"] for r in results) + "`.",
        "",
        "| task | method | teacher acc (calibrated / raw) | student acc | student macro-F1 | student / teacher val acc | "
        "teacher's data | training rows | generate tok/s (pipeline / raw `model.generate`) | total wall | peak RSS |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        wall = sum(w for w, _ in r["stages"].values())  # a stage a row did not time ran inside the next one
        rss = max(m for _, m in r["stages"].values())
        tps = f"{r['gen_tps']:.1f} / {r['raw_tps']:.1f}" if "gen_tps" in r else "–"
        lines.append(
            f"| {r['task']} | {r['method']} | {r['teacher_accuracy']:.4f} / {r['teacher_uncalibrated']:.4f} | "
            f"{r['student_accuracy']:.4f} | {r['student_f1']:.4f} | {r['val_student']:.3f} / {r['val_teacher']:.3f} | "
            f"{r['data']} | {r['n_train']} | {tps} | {wall / 60:.1f} min | {rss:.0f} MB |"
        )
    lines += [
        "",
        "Wall time (s) and peak RSS (MB) per stage:",
        "",
        "| task | " + " | ".join(STAGES) + " |",
        "|---|" + "---|" * len(STAGES),
    ]
    for r in results:
        lines.append(
            f"| {r['task']} | "
            + " | ".join(
                f"{r['stages'][s][0]:.0f} s, {r['stages'][s][1]:.0f} MB" if s in r["stages"] else "–" for s in STAGES
            )
            + " |"
        )
    return "\n".join(lines)


def replace_block(path: Path, name: str, body: str) -> None:
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    text = path.read_text() if path.exists() else ""
    block = f"{begin}\n{body}\n{end}"
    if begin in text:
        text = text[: text.index(begin)] + block + text[text.index(end) + len(end) :]
    else:
        text += "\n" + block + "\n"
    path.write_text(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", nargs="+", default=["sst2", "ag_news"])
    ap.add_argument("--out", default=str(REPO / "docs" / "benchmarks.md"))
    ap.add_argument(
        "--block",
        default="pipeline",
        help="the named block of --out to rewrite (e.g. pipeline-avx2 for a CPU without bf16)",
    )
    ap.add_argument("--results", default=str(RESULTS), help="JSONL of measured tasks (appended)")
    ap.add_argument("--render-only", action="store_true", help="only rewrite the block from --results")
    args = ap.parse_args()
    results = Path(args.results)
    if not args.render_only:
        results.parent.mkdir(parents=True, exist_ok=True)
        for t in args.tasks:
            row = {"block": args.block, **bench(t)}
            print(json.dumps(row, indent=1), flush=True)
            with results.open("a") as f:
                f.write(json.dumps(row) + "\n")
    rows = [json.loads(line) for line in results.read_text().splitlines() if line.strip()] if results.exists() else []
    replace_block(Path(args.out), args.block, render(latest(rows, args.block, args.tasks)))


def latest(rows: list[dict], block: str, tasks: list[str]) -> list[dict]:
    """The last row of each task measured for `block`, in the order of `tasks`."""
    last = {r["task"]: r for r in rows if r.get("block") == block}
    if not last:
        raise SystemExit(f"no rows for block {block!r}: measure them first (without --render-only)")
    return [last[t] for t in tasks if t in last]


if __name__ == "__main__":
    main()

"""Throughput of `distill serve` against the in-process teacher, in one run on this machine (not a test).

Starts `distill serve` (the embedded teacher) as its own process on a free loopback port and sends it the
generate stage's SST-2 requests (2 demonstrations per prompt, so 32 distinct prompts) through the project's
OpenAI backend with 1, 8 and 32 requests in flight; then runs the same requests in this process through
LocalBackend at batch 1, 8 and 32 (the server process sits idle meanwhile). Same decoding as
benchmarks/teacher_speed.py. Then label scoring of SST-2 test rows both ways (the server scores through
completions echo + logprobs, one prompt per label option), and a cache-hit re-run: the same requests again
through a Teacher whose cache already holds them (what an unchanged `dvc repro` pays). Results replace the
`serve` block of docs/benchmarks.md.

    .venv/bin/python benchmarks/serve.py        # ~6 min on 2 cores
"""

from __future__ import annotations

import argparse
import datetime as dt
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline import REPO, replace_block  # noqa: E402
from teacher_speed import DECODING, generation_prompts, machine, ours  # noqa: E402

from distill.config import TeacherParams  # noqa: E402
from distill.prompting.fewshot import pick_demos, score_requests, scoring_prefix  # noqa: E402
from distill.core.tasks import load_task  # noqa: E402
from distill.teachers.base import Teacher  # noqa: E402
from distill.teachers.cache import LLMCache  # noqa: E402
from distill.teachers.local import LocalBackend  # noqa: E402
from distill.teachers.openai_api import OpenAIBackend  # noqa: E402

MODEL = "smollm2-135m-instruct"
LEVELS = (1, 8, 32)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "distill"), "serve", "--model", MODEL, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"distill serve exited: {proc.stderr.read().decode()[-1000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit("distill serve did not start in 180 s")


def client(port: int, concurrency: int, **kw) -> OpenAIBackend:
    return OpenAIBackend(
        TeacherParams(
            backend="openai",
            base_url=f"http://127.0.0.1:{port}/v1",
            model=MODEL,
            api="chat",
            concurrency=concurrency,
            timeout_s=600,
            **kw,
        )
    )


def served_tps(port: int, reqs, concurrency: int) -> tuple[float, float]:
    backend = client(port, concurrency)
    try:
        t0 = time.perf_counter()
        tokens = sum(r.completion_tokens for r in backend.generate(reqs, DECODING))
        secs = time.perf_counter() - t0
    finally:
        backend.close()
    return tokens / secs, len(reqs) / secs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=32, help="generation requests per measurement")
    ap.add_argument("--score-rows", type=int, default=32, help="SST-2 test rows scored each way")
    ap.add_argument("--out", default=str(REPO / "docs" / "benchmarks.md"))
    args = ap.parse_args()
    local = LocalBackend(MODEL)
    reqs = generation_prompts(local, 2, args.requests)
    task = load_task(REPO / "data/tasks/sst2")
    prefix = scoring_prefix(task.spec, pick_demos(task.spec, task.load("fewshot"), 4, seed=0), 1500)
    scoring = score_requests(task.spec, task.load("test")[: args.score_rows], prefix, 1500)
    port = free_port()
    server = start_server(port)
    rows, t_start = [], time.time()
    try:
        served_tps(port, reqs[:4], 4)  # warm-up: first-call allocations on the server
        for level in LEVELS:
            rows.append({"level": level, "served": served_tps(port, reqs, level)})
        backend = client(port, 32, score_via="echo")
        t0 = time.perf_counter()
        backend.score(scoring)
        serve_score = len(scoring) / (time.perf_counter() - t0)
        backend.close()
        with tempfile.TemporaryDirectory() as d:  # cache-hit re-run through the served teacher
            teacher = Teacher(client(port, 32), LLMCache(Path(d) / "c.sqlite"), progress=False)
            t0 = time.perf_counter()
            teacher.generate(reqs, DECODING, batch_size=32)
            cold = time.perf_counter() - t0
            t0 = time.perf_counter()
            teacher.generate(reqs, DECODING, batch_size=32)
            warm, hits = time.perf_counter() - t0, teacher.stats.cache_hits
    finally:
        server.terminate()
        server.wait(30)
    ours(local, reqs[:4], 4)  # the same warm-up in this process
    for row in rows:
        t0 = time.perf_counter()
        tps = ours(local, reqs, row["level"])
        row["local"] = (tps, len(reqs) / (time.perf_counter() - t0))
    with tempfile.TemporaryDirectory() as d:
        teacher = Teacher(local, LLMCache(Path(d) / "c.sqlite"), progress=False)
        t0 = time.perf_counter()
        teacher.score(scoring, 16)
        local_score = len(scoring) / (time.perf_counter() - t0)
    report = render(rows, serve_score, local_score, cold, warm, hits, args, time.time() - t_start)
    replace_block(Path(args.out), "serve", report)
    print(report)


def render(rows, serve_score, local_score, cold, warm, hits, args, wall) -> str:
    lines = [
        f"Measured {dt.date.today()} on {machine()}; {args.requests} SST-2 generation requests (32 distinct prompts, "
        f"{DECODING.max_new_tokens} new tokens at most, top_p {DECODING.top_p}); whole run {wall / 60:.1f} min. "
        "Reproduce: `.venv/bin/python benchmarks/serve.py`.",
        "",
        "| requests in flight / batch size | `distill serve` tok/s | req/s | in-process LocalBackend tok/s | req/s | served / in-process |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        (s_tps, s_rps), (l_tps, l_rps) = r["served"], r["local"]
        lines.append(f"| {r['level']} | {s_tps:.1f} | {s_rps:.2f} | {l_tps:.1f} | {l_rps:.2f} | {s_tps / l_tps:.2f}x |")
    lines += [
        "",
        f"Label scoring, {args.score_rows} SST-2 test rows with the default 4-per-label prompt: in-process "
        f"{local_score:.1f} rows/s (shared-prefix KV reuse, logits only where a label is scored), served "
        f"{serve_score:.1f} rows/s (completions echo + logprobs, 32 in flight: one request per label option, "
        "each returning every prompt token's log-prob; the shared few-shot head runs once).",
        "",
        f"Cache-hit re-run: the same {args.requests} requests through a Teacher with a warm cache took {warm * 1000:.0f} ms "
        f"({hits} cache hits, no request sent) against {cold:.1f} s cold through the server.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()

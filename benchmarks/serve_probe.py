"""Issue #44 probes against a real `distill serve` (the embedded SmolLM2 teacher) on loopback port 8765: long and
megabyte prompts, bad values, 20 concurrent requests beside a 1 MB echo request, SIGTERM while generating.
Run: `.venv/bin/python benchmarks/serve_probe.py` (~1 min). Prints one line each."""

import concurrent.futures as cf
import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

PORT = 8765
URL = f"http://127.0.0.1:{PORT}/v1"
MODEL = "smollm2-135m-instruct"


def post(path, body, timeout=120):
    req = urllib.request.Request(URL + path, json.dumps(body).encode(), {"Content-Type": "application/json"})
    t = time.time()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read()), time.time() - t
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}"), time.time() - t


DISTILL = str(Path(sys.executable).parent / "distill")
proc = subprocess.Popen(
    [DISTILL, "serve", "--port", str(PORT)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
)
for _ in range(300):
    try:
        urllib.request.urlopen(URL + "/models", timeout=2)
        break
    except Exception:
        time.sleep(1)
chat = {"model": MODEL, "messages": [{"role": "user", "content": "Say hi"}], "max_tokens": 4, "seed": 1}
cases = [
    (
        "echo 12000 words",
        "/completions",
        {"model": MODEL, "prompt": "word " * 12000, "echo": True, "logprobs": 1, "max_tokens": 1, "temperature": 0},
    ),
    (
        "echo 1 MB",
        "/completions",
        {"model": MODEL, "prompt": "x" * 1_000_000, "echo": True, "logprobs": 1, "max_tokens": 1, "temperature": 0},
    ),
    ("gen 1 MB", "/completions", {"model": MODEL, "prompt": "word " * 200_000, "max_tokens": 4}),
    ("top_p -0.5", "/chat/completions", {**chat, "top_p": -0.5}),
    ("huge seed", "/chat/completions", {**chat, "seed": 1180591620717411303424}),
    ("messages []", "/chat/completions", {**chat, "messages": []}),
    ("temperature -1", "/chat/completions", {**chat, "temperature": -1}),
    ("top_k -3", "/chat/completions", {**chat, "top_k": -3}),
    ("chat ok", "/chat/completions", chat),
]
for name, path, body in cases:
    code, out, dt = post(path, body)
    print(
        f"{name:16s} {code} {dt:5.2f}s {json.dumps(out.get('error', {}).get('message') or out.get('choices', [{}])[0].get('message', {}).get('content', ''))[:150]}"
    )

# 20 concurrent chat requests plus one 1 MB echo request
with cf.ThreadPoolExecutor(21) as ex:
    big = ex.submit(post, "/completions", cases[1][2])
    small = [ex.submit(post, "/chat/completions", {**chat, "seed": i}) for i in range(20)]
    res = [f.result() for f in small]
print(
    "20 concurrent + 1 MB echo:",
    sorted({c for c, _, _ in res}),
    f"max {max(d for _, _, d in res):.2f}s",
    "big:",
    big.result()[0],
)

# SIGTERM while a long generation runs
with cf.ThreadPoolExecutor(1) as ex:
    ex.submit(post, "/completions", {"model": MODEL, "prompt": "Once upon a time", "max_tokens": 3000, "seed": 3})
    time.sleep(3)
    t = time.time()
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
        print(f"SIGTERM while generating: exited {proc.returncode} after {time.time() - t:.1f}s")
    except subprocess.TimeoutExpired:
        print("SIGTERM while generating: STILL RUNNING after 30 s")
        proc.kill()

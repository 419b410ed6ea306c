"""`distill serve`: the embedded backend over the OpenAI API gives the same answers as in-process, and the server
itself holds up: batched forward passes, timeouts and failures answered as JSON, the command and SIGTERM while busy.
Requests it refuses (bad values, prompts past the context): test_serve_errors.py."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import DEC, ECHO, REQS, chat, completion, post, serve_in_thread, serving
from distill.config import TeacherParams
from distill.teachers.api_format import plain_prompt
from distill.teachers.base import ScoreRequest
from distill.teachers.openai_api import OpenAIBackend

SREQS = [
    ScoreRequest(
        "Classify.\n\nReview: good\nSentiment: positive\n\n",
        f"Review: {t}\nSentiment:",
        (" negative", " positive", " Sci/Tech really"),
    )
    for t in ["fine", "a much longer text with many more tokens in it than the others", "meh !"]
]


@pytest.fixture(scope="module")
def served_peaked(peaked_llm):  # samples compared across batch compositions (conftest.peaked_llm says why)
    with serving(peaked_llm) as s:
        yield s


def client(url, **kw) -> OpenAIBackend:
    return OpenAIBackend(TeacherParams(backend="openai", base_url=url, model="tiny", max_retries=0, **kw))


def test_served_generation_equals_local(served_peaked):
    url, app, local = served_peaked
    # prefix_as=assistant: the server continues the prefix exactly as the local backend pre-fills it
    assert client(url, prefix_as="assistant").generate(REQS, DEC) == local.generate(REQS, DEC)
    assert max(app.state.batcher.sizes) > 1  # concurrent requests shared a forward pass

    prompts = [local.encode(plain_prompt(r)) for r in REQS]
    expected = local.results(prompts, local.sample_ids(prompts, [r.seed for r in REQS], DEC))
    assert client(url, api="completions").generate(REQS, DEC) == expected

    hinted = client(url).generate(REQS, DEC)  # the portable default: same count and schema
    assert len(hinted) == len(REQS) and all(r.finish in ("stop", "length") and r.completion_tokens > 0 for r in hinted)


def test_served_scores_match_local(served):
    url, _, local = served
    api = client(url)
    got = api.score(SREQS)
    for g, want, r in zip(got, local.score(SREQS), SREQS):
        # Exact for the server's tokenisation of the joined text; close to the local scorer, which encodes
        # prefix, text and option apart ("positive\n\n" + "Review" splits "\n\n" differently).
        joint = [
            sum(
                lp
                for lp, _ in local.token_logprobs([local.encode(r.prefix + r.text + o)])[0][
                    -1 - len(local.encode(o)) : -1
                ]
            )
            for o in r.options
        ]
        assert g == pytest.approx(joint, abs=1e-4) and g == pytest.approx(want, abs=0.05)
    assert api.counters["scored_by.echo"] == len(SREQS) and "fallback.echo" not in api.counters
    top = client(url, score_via="top_logprobs").score(SREQS)
    assert [len(s) for s in top] == [3] * len(SREQS) and all(v < 0 for s in top for v in s)


def rigged(path):
    """A backend whose generation waits for `gate` (a forward pass that takes long) and whose scoring fails."""
    from distill.teachers.local import LocalBackend

    class Rigged(LocalBackend):
        gate, calls = threading.Event(), []

        def sample_ids(self, prompts, seeds, decoding):
            self.calls.append(decoding.temperature)
            self.gate.wait(30)
            return super().sample_ids(prompts, seeds, decoding)

        def token_logprobs(self, seqs, top_k=1):
            raise RuntimeError("boom\nand a traceback's worth of detail")

    return Rigged(path)


def test_slow_requests_time_out_and_failures_are_json(tiny_llm):
    from distill.teachers.serve import create_app

    backend = rigged(str(tiny_llm))
    with serve_in_thread(create_app(backend, "tiny", window_s=0.001, request_timeout=0.5)) as url:
        status, body = post(url, "/completions", completion(**ECHO))
        assert status == 500 and body["error"]["message"] == "internal error: RuntimeError: boom"

        start = time.monotonic()
        with ThreadPoolExecutor(2) as pool:
            stuck = pool.submit(post, url, "/chat/completions", chat(temperature=0.5))
            time.sleep(0.2)
            queued = pool.submit(post, url, "/chat/completions", chat(temperature=0.7))  # waits behind the stuck pass
            answers = [stuck.result(), queued.result()]
        assert [(s, b["error"]["code"]) for s, b in answers] == [(504, "timeout")] * 2
        assert time.monotonic() - start < 3
        backend.gate.set()
        assert post(url, "/chat/completions", chat(temperature=0.9))[0] == 200
        assert backend.calls == [0.5, 0.9]  # the queued request's work was dropped when it timed out


def test_batcher_cuts_big_groups_and_outlives_failures():
    from distill.teachers.serve import Batcher

    def run(kind, items):
        if kind == "fail":
            raise RuntimeError("boom")
        return [n * 10 for n in items][: -1 if kind == "short" else None]  # "short": one result missing

    async def main():
        batcher = Batcher(run, window_s=0.05, cost=lambda kind, n: n, max_group_tokens=100)
        worker = batcher.start()
        try:
            # one long row among 31 short ones: 32 x 90 padded tokens; alone, after them, it is 31 x 2 + 90
            sizes = [2] * 16 + [90] + [2] * 15
            assert await asyncio.gather(*[batcher.submit("ok", n) for n in sizes]) == [n * 10 for n in sizes]
            assert batcher.sizes == [31, 1]
            for kind in ("fail", "short"):
                with pytest.raises(RuntimeError):
                    await asyncio.wait_for(batcher.submit(kind, 1), 5)
            assert await asyncio.wait_for(batcher.submit("ok", 3), 5) == 30  # still serving
        finally:
            worker.cancel()

    asyncio.run(main())


# `distill serve` itself, with one change: a request for 77 tokens stands for a forward pass that runs for minutes
# (a sleep on the model thread, which like torch's kernels does not hold the GIL); `busy` says it has started.
SLOW_SERVE = """
import sys, time
from distill.teachers.local import LocalBackend
real, busy = LocalBackend.sample_ids, sys.argv[1]
def sample_ids(self, prompts, seeds, decoding):
    if decoding.max_new_tokens == 77:
        open(busy, "w").close()
        time.sleep(600)
    return real(self, prompts, seeds, decoding)
LocalBackend.sample_ids = sample_ids
from distill.cli import main
sys.argv = ["distill", *sys.argv[2:]]
main()
"""


def test_distill_serve_command_and_sigterm_while_busy(tiny_llm, tmp_path):
    from distill.teachers.serve import GRACE_S

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    busy, url, pool = tmp_path / "busy", f"http://127.0.0.1:{port}/v1", ThreadPoolExecutor(1)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            SLOW_SERVE,
            str(busy),
            "serve",
            "--model",
            str(tiny_llm),
            "--name",
            "tiny",
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                models = json.load(urllib.request.urlopen(f"{url}/models", timeout=2))
                break
            except OSError:
                exited = proc.poll() is not None
                assert not exited and time.monotonic() < deadline, proc.stdout.read() if exited else "timeout"
                time.sleep(0.3)
        assert [m["id"] for m in models["data"]] == ["tiny"]
        out = client(url, prefix_as="assistant").generate(REQS[:2], DEC)
        assert len(out) == 2 and out[0].prompt_tokens > 0

        # SIGTERM while a request waits on that pass: uvicorn used to wait for the request forever (issue #44)
        pool.submit(post, url, "/chat/completions", chat(max_tokens=77), 60)
        deadline = time.monotonic() + 30
        while not busy.exists():
            assert time.monotonic() < deadline, "the slow request never reached the model"
            time.sleep(0.05)
        start = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(GRACE_S + 8)
        assert time.monotonic() - start < GRACE_S + 3
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        pool.shutdown()  # its request ends with the server

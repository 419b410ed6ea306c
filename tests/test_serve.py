"""`distill serve`: the embedded backend over the OpenAI API gives the same answers as in-process."""
from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import serve_in_thread
from distill.config import TeacherParams
from distill.teachers.api_format import plain_prompt
from distill.teachers.base import Decoding, GenRequest, ScoreRequest
from distill.teachers.openai_api import OpenAIBackend

REQS = [GenRequest(messages=(("user", f"Write a {lab} review."),), prefix='"', seed=i) for i in range(4) for lab in ("positive", "negative")]
SREQS = [ScoreRequest("Classify.\n\nReview: good\nSentiment: positive\n\n", f"Review: {t}\nSentiment:", (" negative", " positive", " Sci/Tech really"))
         for t in ["fine", "a much longer text with many more tokens in it than the others", "meh !"]]
DEC = Decoding(max_new_tokens=8, temperature=1.0, top_p=0.9)


@contextlib.contextmanager
def serving(llm):
    from distill.teachers.local import LocalBackend
    from distill.teachers.serve import create_app

    app = create_app(LocalBackend(str(llm)), "tiny", window_s=0.02)
    with serve_in_thread(app) as url:
        yield url, app, LocalBackend(str(llm))


@pytest.fixture(scope="module")
def served(tiny_llm):
    with serving(tiny_llm) as s:
        yield s


@pytest.fixture(scope="module")
def served_peaked(peaked_llm):  # samples compared across batch compositions (conftest.peaked_llm says why)
    with serving(peaked_llm) as s:
        yield s


def client(url, **kw) -> OpenAIBackend:
    return OpenAIBackend(TeacherParams(backend="openai", base_url=url, model="tiny", max_retries=0, **kw))


def post(url: str, route: str, payload, timeout: float = 30) -> tuple[int, dict]:
    """(HTTP status, JSON body) of one request, errors included."""
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    try:
        with urllib.request.urlopen(urllib.request.Request(url + route, data, {"Content-Type": "application/json"}),
                                    timeout=timeout) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def completion(**kw) -> dict:
    return {"model": "tiny", "prompt": "hello", "max_tokens": 2, **kw}


def chat(**kw) -> dict:
    return {"model": "tiny", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 2, **kw}


ECHO = dict(echo=True, logprobs=1, max_tokens=1, temperature=0)  # what label scoring sends
HUGE = "word " * 200_000  # 1 MB, 200001 tokens


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
        joint = [sum(lp for lp, _ in local.token_logprobs([local.encode(r.prefix + r.text + o)])[0][-1 - len(local.encode(o)) : -1])
                 for o in r.options]
        assert g == pytest.approx(joint, abs=1e-4) and g == pytest.approx(want, abs=0.05)
    assert api.counters["scored_by.echo"] == len(SREQS) and "fallback.echo" not in api.counters
    top = client(url, score_via="top_logprobs").score(SREQS)
    assert [len(s) for s in top] == [3] * len(SREQS) and all(v < 0 for s in top for v in s)


def test_served_errors_are_openai_shaped(served):
    from distill.io import DistillError

    url, _, _ = served
    with pytest.raises(DistillError, match=r"teacher.model: 'other' not found .*HTTP 404"):
        OpenAIBackend(TeacherParams(backend="openai", base_url=url, model="other", max_retries=0)).generate(REQS[:1], DEC)
    body = json.dumps({"model": "tiny", "prompt": "x", "n": 2}).encode()
    req = urllib.request.Request(url + "/completions", body, {"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req)
    assert e.value.code == 400 and json.load(e.value)["error"]["code"] == "unsupported"


@pytest.mark.parametrize("route, field, value, code", [
    ("/completions", "max_tokens", 100000000, "max_tokens_too_large"),  # would allocate a 76 GB KV cache
    ("/chat/completions", "max_tokens", 100000000, "max_tokens_too_large"),
    ("/completions", "max_tokens", -5, "invalid_request"),
    ("/chat/completions", "max_completion_tokens", -1, "invalid_request"),
])
def test_served_max_tokens_is_bounded(served, route, field, value, code):
    url, _, _ = served
    payload = {"model": "tiny", field: value, **({"prompt": "hello"} if route == "/completions" else
                                                 {"messages": [{"role": "user", "content": "hello"}]})}
    req = urllib.request.Request(url + route, json.dumps(payload).encode(), {"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req)
    err = json.load(e.value)["error"]
    assert e.value.code == 400 and err["code"] == code and field in err["message"]


@pytest.mark.parametrize("route, fields, field", [
    ("/completions", {"top_p": -0.5}, "top_p"),  # each was a bare 500 or a 200 (issue #44)
    ("/completions", {"top_p": 0}, "top_p"),
    ("/chat/completions", {"top_p": 1.5}, "top_p"),
    ("/completions", {"temperature": -1}, "temperature"),
    ("/chat/completions", {"temperature": 2.5}, "temperature"),
    ("/completions", {"top_k": -3}, "top_k"),
    ("/completions", {"seed": 1180591620717411303424}, "seed"),
    ("/chat/completions", {"seed": -(2**63) - 1}, "seed"),
    ("/completions", {"n": 0}, "n"),
    ("/completions", {"logprobs": 21}, "logprobs"),
    ("/completions", {"logprobs": -1}, "logprobs"),
    ("/chat/completions", {"top_logprobs": 21}, "top_logprobs"),
    ("/completions", {"prompt": []}, "prompt"),
    ("/completions", {"prompt": ""}, "prompt"),
    ("/completions", {"prompt": ["fine", ""]}, "prompt"),
    ("/completions", {"echo": "maybe"}, "echo"),
    ("/completions", {"model": None}, "model"),
    ("/chat/completions", {"messages": []}, "messages"),
    ("/chat/completions", {"messages": [{"role": "robot", "content": "hi"}]}, "messages.0.role"),
    ("/chat/completions", {"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]},
     "messages.0.content"),
])
def test_bad_values_are_a_400_naming_the_field(served, route, fields, field):
    status, body = post(served[0], route, (completion if route == "/completions" else chat)(**fields))
    assert status == 400 and body["error"]["code"] == "invalid_request", body
    assert body["error"]["param"].startswith(field) and body["error"]["message"].startswith(field), body


def test_a_body_that_is_not_json_is_a_400(served):
    status, body = post(served[0], "/completions", b'{"model": "tiny", "prompt": ')
    assert status == 400 and "not JSON" in body["error"]["message"]


@pytest.mark.parametrize("route, fields", [
    ("/completions", {"top_k": -1, "temperature": 2, "top_p": 1, "seed": -(2**63)}),  # -1 and 0: top-k off (vLLM)
    ("/chat/completions", {"top_k": 0, "temperature": 0, "seed": 2**63 - 1, "logprobs": True, "top_logprobs": 0}),
    ("/chat/completions", {"temperature": None, "top_p": None, "seed": None, "max_tokens": None,
                           "max_completion_tokens": 0}),  # null is the default; 0 tokens is 0 (it was 256)
    ("/completions", {"echo": True, "logprobs": 0, "max_tokens": 0, "prompt": ["one", "two"]}),
])
def test_edge_values_are_served(served, route, fields):
    status, body = post(served[0], route, (completion if route == "/completions" else chat)(**fields))
    assert status == 200, body
    assert body["usage"]["completion_tokens"] <= (fields.get("max_completion_tokens") or fields.get("max_tokens") or 2)


@pytest.mark.parametrize("route, fields", [
    ("/completions", {"prompt": "word " * 2000, **ECHO}),  # issue #44: scoring skipped the check and hung the server
    ("/completions", {"prompt": "word " * 2000, "echo": True, "logprobs": 1, "max_tokens": 0}),
    ("/completions", {"prompt": ["short", "word " * 2000], "max_tokens": 4}),
    ("/chat/completions", {"messages": [{"role": "user", "content": "word " * 2000}]}),
    ("/chat/completions", {"messages": [{"role": "user", "content": HUGE}], "max_tokens": 4}),
])
def test_a_prompt_longer_than_the_context_is_refused(served, route, fields):
    status, body = post(served[0], route, (completion if route == "/completions" else chat)(**fields))
    assert status == 400 and body["error"]["code"] == "context_length_exceeded", body
    assert re.fullmatch(r"prompt is (at least )?\d+ tokens; this model's context is 1024 tokens",
                        body["error"]["message"])


def test_max_tokens_past_the_context_names_the_room_left(served):
    status, body = post(served[0], "/completions", completion(prompt="word " * 1000, max_tokens=100))
    assert status == 400 and body["error"]["code"] == "max_tokens_too_large"
    assert re.search(r"\((\d+): --max-tokens 4096, context 1024 tokens, prompt 1001\)", body["error"]["message"])


def test_a_huge_echo_request_then_a_chat_request_is_answered(served):
    start = time.monotonic()
    status, body = post(served[0], "/completions", completion(prompt=HUGE, **ECHO))
    assert status == 400 and body["error"]["message"].startswith("prompt is at least ")  # refused on its length alone
    assert post(served[0], "/chat/completions", chat())[0] == 200
    assert time.monotonic() - start < 5


def test_small_requests_are_answered_while_a_huge_one_is_tokenized(tiny_llm, monkeypatch):
    from distill.teachers.local import LocalBackend
    from distill.teachers.serve import create_app

    monkeypatch.setattr("distill.teachers.serve.max_token_chars", lambda tok: None)  # a tokenizer with no bound
    app = create_app(LocalBackend(str(tiny_llm)), "tiny", window_s=0.005)
    with serve_in_thread(app) as url, ThreadPoolExecutor(21) as pool:
        start = time.monotonic()
        huge = pool.submit(post, url, "/completions", completion(prompt=HUGE, **ECHO))
        small = [pool.submit(post, url, "/completions", completion(seed=i)) if i % 2 else
                 pool.submit(post, url, "/chat/completions", chat(seed=i)) for i in range(20)]
        assert [f.result()[0] for f in small] == [200] * 20
        status, body = huge.result()
        assert status == 400
        assert body["error"]["message"] == "prompt is 200001 tokens; this model's context is 1024 tokens"
        assert time.monotonic() - start < 20


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
    proc = subprocess.Popen([sys.executable, "-c", SLOW_SERVE, str(busy), "serve", "--model", str(tiny_llm), "--name",
                             "tiny", "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
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

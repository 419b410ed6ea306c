"""`distill serve`: the embedded backend over the OpenAI API gives the same answers as in-process."""
from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import time
import urllib.request

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


def test_distill_serve_command(tiny_llm):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "distill.cli", "serve", "--model", str(tiny_llm), "--name", "tiny", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                models = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2))
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read() if proc.poll() is not None else "timeout"
                time.sleep(0.3)
        assert [m["id"] for m in models["data"]] == ["tiny"]
        out = client(f"http://127.0.0.1:{port}/v1", prefix_as="assistant").generate(REQS[:2], DEC)
        assert len(out) == 2 and out[0].prompt_tokens > 0
    finally:
        proc.terminate()
        proc.wait(10)

"""`distill serve`'s refusals, OpenAI-shaped: an unknown model, an unsupported or out-of-range value (a 400 naming
the field), a body that is not JSON, a prompt past the model's context (refused on its length, without holding up
the requests behind it); and the edge values that are served. The answers themselves: test_serve.py."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import DEC, ECHO, REQS, chat, completion, post, serve_in_thread
from distill.config import TeacherParams
from distill.teachers.openai_api import OpenAIBackend

HUGE = "word " * 200_000  # 1 MB, 200001 tokens


def test_served_errors_are_openai_shaped(served):
    from distill.core.io import DistillError

    url, _, _ = served
    with pytest.raises(DistillError, match=r"teacher.model: 'other' not found .*HTTP 404"):
        OpenAIBackend(TeacherParams(backend="openai", base_url=url, model="other", max_retries=0)).generate(
            REQS[:1], DEC
        )
    body = json.dumps({"model": "tiny", "prompt": "x", "n": 2}).encode()
    req = urllib.request.Request(url + "/completions", body, {"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req)
    assert e.value.code == 400 and json.load(e.value)["error"]["code"] == "unsupported"


@pytest.mark.parametrize(
    "route, field, value, code",
    [
        ("/completions", "max_tokens", 100000000, "max_tokens_too_large"),  # would allocate a 76 GB KV cache
        ("/chat/completions", "max_tokens", 100000000, "max_tokens_too_large"),
        ("/completions", "max_tokens", -5, "invalid_request"),
        ("/chat/completions", "max_completion_tokens", -1, "invalid_request"),
    ],
)
def test_served_max_tokens_is_bounded(served, route, field, value, code):
    url, _, _ = served
    payload = {
        "model": "tiny",
        field: value,
        **({"prompt": "hello"} if route == "/completions" else {"messages": [{"role": "user", "content": "hello"}]}),
    }
    req = urllib.request.Request(url + route, json.dumps(payload).encode(), {"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req)
    err = json.load(e.value)["error"]
    assert e.value.code == 400 and err["code"] == code and field in err["message"]


@pytest.mark.parametrize(
    "route, fields, field",
    [
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
        (
            "/chat/completions",
            {"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]},
            "messages.0.content",
        ),
    ],
)
def test_bad_values_are_a_400_naming_the_field(served, route, fields, field):
    status, body = post(served[0], route, (completion if route == "/completions" else chat)(**fields))
    assert status == 400 and body["error"]["code"] == "invalid_request", body
    assert body["error"]["param"].startswith(field) and body["error"]["message"].startswith(field), body


def test_a_body_that_is_not_json_is_a_400(served):
    status, body = post(served[0], "/completions", b'{"model": "tiny", "prompt": ')
    assert status == 400 and "not JSON" in body["error"]["message"]


@pytest.mark.parametrize(
    "route, fields",
    [
        ("/completions", {"top_k": -1, "temperature": 2, "top_p": 1, "seed": -(2**63)}),  # -1 and 0: top-k off (vLLM)
        ("/chat/completions", {"top_k": 0, "temperature": 0, "seed": 2**63 - 1, "logprobs": True, "top_logprobs": 0}),
        (
            "/chat/completions",
            {"temperature": None, "top_p": None, "seed": None, "max_tokens": None, "max_completion_tokens": 0},
        ),  # null is the default; 0 tokens is 0 (it was 256)
        ("/completions", {"echo": True, "logprobs": 0, "max_tokens": 0, "prompt": ["one", "two"]}),
    ],
)
def test_edge_values_are_served(served, route, fields):
    status, body = post(served[0], route, (completion if route == "/completions" else chat)(**fields))
    assert status == 200, body
    assert body["usage"]["completion_tokens"] <= (fields.get("max_completion_tokens") or fields.get("max_tokens") or 2)


@pytest.mark.parametrize(
    "route, fields",
    [
        (
            "/completions",
            {"prompt": "word " * 2000, **ECHO},
        ),  # issue #44: scoring skipped the check and hung the server
        ("/completions", {"prompt": "word " * 2000, "echo": True, "logprobs": 1, "max_tokens": 0}),
        ("/completions", {"prompt": ["short", "word " * 2000], "max_tokens": 4}),
        ("/chat/completions", {"messages": [{"role": "user", "content": "word " * 2000}]}),
        ("/chat/completions", {"messages": [{"role": "user", "content": HUGE}], "max_tokens": 4}),
    ],
)
def test_a_prompt_longer_than_the_context_is_refused(served, route, fields):
    status, body = post(served[0], route, (completion if route == "/completions" else chat)(**fields))
    assert status == 400 and body["error"]["code"] == "context_length_exceeded", body
    assert re.fullmatch(
        r"prompt is (at least )?\d+ tokens; this model's context is 1024 tokens", body["error"]["message"]
    )


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
        small = [
            pool.submit(post, url, "/completions", completion(seed=i))
            if i % 2
            else pool.submit(post, url, "/chat/completions", chat(seed=i))
            for i in range(20)
        ]
        assert [f.result()[0] for f in small] == [200] * 20
        status, body = huge.result()
        assert status == 400
        assert body["error"]["message"] == "prompt is 200001 tokens; this model's context is 1024 tokens"
        assert time.monotonic() - start < 20

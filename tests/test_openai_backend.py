"""The OpenAI-compatible backend against a loopback fake server that injects faults.

The fake answers like conftest.FakeBackend (deterministic per prompt and seed) through the real OpenAI wire
format; a fault plan makes its first requests fail (429 + Retry-After, 500, stalls, dropped connections,
malformed JSON, off-format replies) so retries must recover exactly the fault-free answers.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time

import pytest
from fastapi import FastAPI, Request
from starlette.responses import JSONResponse, Response

from conftest import FakeBackend, serve_in_thread, write_params
from distill.config import TeacherParams, load_params
from distill.core.io import DistillError
from distill.teachers import api_format as fmt
from distill.teachers.base import Decoding, GenRequest, ScoreRequest, Teacher
from distill.teachers.cache import LLMCache
from distill.teachers.openai_api import OpenAIBackend

SECRET = "sk-test-SECRET123"
REQS = [
    GenRequest(messages=(("user", f"Write a {lab} review."),), prefix='"', seed=i)
    for i in range(6)
    for lab in ("positive", "negative")
]
SREQS = [
    ScoreRequest(
        "Classify.\n\nReview: great\nSentiment: positive\n\n",
        f"Review: a {w} film {i}\nSentiment:",
        (" negative", " positive"),
    )
    for i, w in enumerate(["dull", "great", "boring", "superb", "awful", "moving"])
]
DEC = Decoding(max_new_tokens=16, temperature=1.0, top_p=0.9)


class FakeServer:
    """An OpenAI-compatible ASGI app over FakeBackend, with faults served to the first requests, in order."""

    def __init__(self, faults=(), echo=True, chat_logprobs=True, stall_s=1.5):
        self.faults, self.stall_s, self.lock = list(faults), stall_s, threading.Lock()
        self.echo, self.chat_logprobs = echo, chat_logprobs
        self.requests, self.auth = 0, set()
        self.llm = FakeBackend()
        self.app = FastAPI()
        self.app.post("/v1/chat/completions")(self.chat)
        self.app.post("/v1/completions")(self.completions)

    def _score(self, text: str, option: str) -> float:
        return self.llm.score([ScoreRequest("", text.rsplit("\n\n", 1)[-1], (option,))])[0][0]

    async def chat(self, request: Request):
        body = await request.json()
        if body["model"] != "fake":
            return JSONResponse({"error": {"message": f"The model '{body['model']}' does not exist"}}, status_code=404)
        content = body["messages"][-1]["content"]
        if "(Reply with one of:" in content:  # a scoring prompt: answer the best label word
            text = content.rsplit("\n\n(Reply", 1)[0]
            opts = {w: self._score(text, " " + w) for w in ("negative", "positive")}
            best = max(opts, key=opts.get)
            top = [
                {"token": w, "logprob": -0.1 if w == best else -2.5, "bytes": None}
                for w in sorted(opts, key=opts.get, reverse=True)
            ]
            logprobs = (
                {"content": [{"token": best, "logprob": -0.1, "bytes": None, "top_logprobs": top}]}
                if self.chat_logprobs
                else None
            )
            return self._reply(
                "chat.completion", {"message": {"role": "assistant", "content": best}, "logprobs": logprobs}
            )
        req = GenRequest(messages=tuple((m["role"], m["content"]) for m in body["messages"]), seed=body["seed"])
        res = self.llm.generate([req], Decoding())[0]
        return self._reply(
            "chat.completion", {"message": {"role": "assistant", "content": '"' + res.text}, "logprobs": None}
        )

    async def completions(self, request: Request):
        body = await request.json()
        choices = []
        for i, prompt in enumerate(body["prompt"]):
            toks = [(m.group(), m.start()) for m in re.finditer(r"\s*\S+", prompt)]
            head = prompt[: toks[-1][1]]
            values = [None] + [-1.0] * (len(toks) - 2) + [self._score(head, toks[-1][0])]
            lp = (
                {"tokens": [t for t, _ in toks], "token_logprobs": values, "text_offset": [o for _, o in toks]}
                if self.echo
                else None
            )
            choices.append({"index": i, "text": prompt + " x", "finish_reason": "length", "logprobs": lp})
        return self._reply("text_completion", *choices)

    @staticmethod
    def _reply(obj, *choices):
        choices = [{"index": 0, **c} for c in choices] if "index" not in choices[0] else list(choices)
        for c in choices:
            c.setdefault("finish_reason", "stop")
        return {
            "id": "x",
            "object": obj,
            "created": 0,
            "model": "fake",
            "choices": choices,
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        }

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        with self.lock:
            self.requests += 1
            self.auth.add(dict(scope["headers"]).get(b"authorization", b"").decode())
            fault = self.faults.pop(0) if self.faults else None
        if fault == "drop":  # headers promise a body that never comes, then the connection closes
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"999")],
                }
            )
            await send({"type": "http.response.body", "body": b'{"id": "x", ', "more_body": True})
            return
        if fault == "stall":
            await asyncio.sleep(self.stall_s)
        canned = {
            "429": JSONResponse({"error": {"message": "slow down"}}, status_code=429, headers={"retry-after": "1"}),
            "500": JSONResponse({"error": {"message": "boom"}}, status_code=500),
            "503": Response("upstream unavailable", status_code=503),
            "malformed": Response(b'{"id": "x", "choices": [', media_type="application/json"),
            "offformat": JSONResponse({"id": "x", "object": "chat.completion", "choices": []}),
            "401": JSONResponse({"error": {"message": f"Incorrect API key provided: {SECRET}"}}, status_code=401),
        }.get(fault)
        await (canned or self.app)(scope, receive, send)


def api_params(url, **kw) -> TeacherParams:
    return TeacherParams(
        **{
            "backend": "openai",
            "base_url": url,
            "model": "fake",
            "timeout_s": 0.5,
            "max_retries": 8,
            "retry_backoff_s": 0.01,
            "concurrency": 4,
            **kw,
        }
    )


def run_teacher(server: FakeServer, cache_path, **kw):
    with serve_in_thread(server) as url:
        t = Teacher(OpenAIBackend(api_params(url, **kw)), LLMCache(cache_path), progress=False)
        return t.generate(REQS, DEC, batch_size=8), t.score(SREQS, batch_size=4), t


def test_faults_are_retried_and_answers_match_a_clean_run(tmp_path):
    gen, scores, clean = run_teacher(FakeServer(), tmp_path / "clean.sqlite")
    assert [g.text for g in gen] == [g.text for g in FakeBackend().generate(REQS, DEC)]  # the echoed prefix is stripped
    assert all(s[1] > s[0] for s, w in zip(scores, "dgbsam") if w in "gsm") and clean.stats.extra["scored_by.echo"] == 6
    assert "retries" not in clean.stats.extra

    faults = ["429", "500", "stall", "drop", "malformed", "offformat", "503"]
    t0 = time.perf_counter()
    # a 2 s timeout, not 0.5: on a loaded machine an answered request once took longer and counted one retry too many
    fgen, fscores, faulty = run_teacher(FakeServer(faults, stall_s=3.0), tmp_path / "faulty.sqlite", timeout_s=2.0)
    assert time.perf_counter() - t0 >= 1.0  # Retry-After: 1 was honoured (the backoff base is 10 ms)
    assert fgen == gen and fscores == scores
    x = faulty.stats.extra
    assert x["retries"] == len(faults)
    assert {k: v for k, v in x.items() if k.startswith("retries.")} == {
        "retries.429": 1,
        "retries.500": 1,
        "retries.503": 1,
        "retries.timeout": 1,
        "retries.connection": 1,
        "retries.malformed_json": 1,
        "retries.no_choices": 1,
    }
    assert x["rejected.malformed_json"] == 1 and x["rejected.no_choices"] == 1
    assert faulty.stats.calls == clean.stats.calls == len(REQS) + len(SREQS)


def test_persistent_off_format_is_rejected_not_cached(tmp_path):
    with serve_in_thread(FakeServer(["offformat"] * 3)) as url:
        t = Teacher(OpenAIBackend(api_params(url, max_retries=2)), LLMCache(tmp_path / "c.sqlite"), progress=False)
        gen = t.generate(REQS[:3], DEC, batch_size=1)  # the first request gets all three faults
    assert gen[0].finish == "error" and gen[0].text == "" and t.stats.extra["rejected.no_choices"] == 3
    assert all(g.finish == "stop" for g in gen[1:])
    assert LLMCache(tmp_path / "c.sqlite").count() == 2  # the rejected one is asked again next run


def test_unreachable_server_stops_with_one_line(tmp_path):
    backend = OpenAIBackend(api_params("http://127.0.0.1:9/v1", max_retries=1))  # port 9: nothing listens
    with pytest.raises(DistillError, match=r"^teacher at 127.0.0.1:9/v1: no answer after 2 tries \(last: connection\)"):
        backend.generate(REQS[:2], DEC)


def test_a_server_that_never_answers_api_json_stops_the_stage(tmp_path):
    """A base_url that reaches some other web app (200, not JSON) is a setup error, not a run with no data."""
    with serve_in_thread(FakeServer(["malformed"] * 3)) as url:
        backend = OpenAIBackend(api_params(url, max_retries=2))
        with pytest.raises(
            DistillError, match=r"^teacher at 127.0.0.1:\d+/v1: 3 replies were not OpenAI API JSON; is teacher.base_url"
        ):
            backend.generate(REQS[:1], DEC)


@pytest.mark.parametrize(
    "url, says",
    [
        ("http://[::1/v1", "not a valid URL"),
        ("http://127.0.0.1:99999/v1", "not a valid URL"),
        ("http:///v1", "names no host"),
        ("https://bob:hunter2@api.example.com/v1", "must not carry credentials"),
        ("https://api.example.com/v1?api-key=hunter2", "must not carry credentials"),
    ],
)
def test_base_url_is_checked_and_carries_no_credentials(tmp_path, url, says):
    """base_url is a stage param (dvc.lock, MLflow): a broken one fails on load, one holding a key never gets in."""
    with pytest.raises(DistillError, match=f"params.yaml: teacher.base_url: {says}") as e:
        load_params(write_params(tmp_path / "params.yaml", teacher={"backend": "openai", "base_url": url}))
    assert "hunter2" not in str(e.value) and "\n" not in str(e.value)
    ok = "https://example.openai.azure.com/openai/v1?api-version=2024-10-21"
    assert load_params(write_params(tmp_path / "ok.yaml", teacher={"base_url": ok})).teacher.base_url == ok


def test_a_key_that_httpx_cannot_send_is_named_not_echoed(monkeypatch):
    from distill.teachers.openai_api import read_key

    monkeypatch.setenv("DISTILL_TEST_KEY", "sk-abc\u2019def")  # a curly quote pasted with the key
    with pytest.raises(
        DistillError, match="^teacher.api_key_env: the value of DISTILL_TEST_KEY is not a valid API key"
    ) as e:
        read_key("DISTILL_TEST_KEY")
    assert "abc" not in str(e.value)


def test_401_stops_at_once_without_the_key(tmp_path, monkeypatch):
    monkeypatch.setenv("DISTILL_TEST_KEY", SECRET)
    server = FakeServer(["401"] * 50)
    with pytest.raises(DistillError) as e:
        run_teacher(server, tmp_path / "c.sqlite", api_key_env="DISTILL_TEST_KEY")
    msg = str(e.value)
    assert "HTTP 401" in msg and "DISTILL_TEST_KEY" in msg and "\n" not in msg and SECRET not in msg
    assert server.requests <= 4 and server.auth == {f"Bearer {SECRET}"}  # no retries; the key was sent


def test_unknown_model_and_missing_key_env(tmp_path, monkeypatch):
    with serve_in_thread(FakeServer()) as url:
        with pytest.raises(DistillError, match=r"^teacher.model: 'nope' not found at 127.0.0.1:\d+/v1 \(HTTP 404"):
            OpenAIBackend(api_params(url, model="nope")).generate(REQS[:1], DEC)
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    with pytest.raises(DistillError, match="teacher.api_key_env: environment variable NO_SUCH_KEY_VAR is not set"):
        OpenAIBackend(api_params("http://127.0.0.1:9/v1", api_key_env="NO_SUCH_KEY_VAR"))


@pytest.mark.parametrize(
    "token",
    [
        "hf_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
        "ghp_0123456789abcdefABCDEF0123456789abcd",
        "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",
    ],
)
def test_a_token_that_looks_like_a_variable_name_is_never_echoed(tmp_path, token):
    """Tokens like hf_..., ghp_..., gsk_... are valid identifiers: refused as api_key_env, and never repeated."""
    path = write_params(tmp_path / "params.yaml", teacher={"backend": "openai", "api_key_env": token})
    with pytest.raises(DistillError) as e:
        load_params(path)
    assert "teacher.api_key_env" in str(e.value) and token not in str(e.value) and token[4:12] not in str(e.value)
    from distill.teachers.openai_api import read_key

    with pytest.raises(DistillError) as e:  # even if it reached the backend, the name would not be echoed
        read_key(token)
    assert token not in str(e.value)
    assert (
        load_params(write_params(tmp_path / "ok.yaml", teacher={"api_key_env": "GROQ_API_KEY"})).teacher.api_key_env
        == "GROQ_API_KEY"
    )


def test_scoring_falls_back_when_the_server_lacks_logprobs(tmp_path):
    _, echo, _ = run_teacher(FakeServer(), tmp_path / "a.sqlite")
    _, top, t = run_teacher(FakeServer(echo=False), tmp_path / "b.sqlite")  # like Ollama: no prompt log-probs
    assert t.stats.extra["fallback.echo"] == 1 and t.stats.extra["scored_by.top_logprobs"] == 6
    _, ans, t = run_teacher(FakeServer(echo=False, chat_logprobs=False), tmp_path / "c.sqlite")
    assert t.stats.extra["scored_by.answer"] == 6 and all(sorted(s) == [fmt.UNKNOWN, 0.0] for s in ans)
    best = [max(range(2), key=s.__getitem__) for s in echo]
    assert [max(range(2), key=s.__getitem__) for s in top] == best == [max(range(2), key=s.__getitem__) for s in ans]
    # A cache filled through one route does not answer another: parsed answers are not log-probs.
    with serve_in_thread(FakeServer()) as url:
        for via, hits in [("answer", 0), ("echo", 0), ("answer", 6)]:
            t = Teacher(OpenAIBackend(api_params(url, score_via=via)), LLMCache(tmp_path / "d.sqlite"), progress=False)
            t.score(SREQS, batch_size=4)
            assert t.stats.cache_hits == hits


def test_api_key_is_never_written(tmp_path, monkeypatch, toy_task, capsys):
    """A whole generate stage against the fake server with a key in the environment: the key reaches the
    server and nothing written (params, outputs, metrics, the cache database, output, errors) contains it."""
    from distill.methods.zerogen import generate
    from distill.methods.zerogen import prompts

    monkeypatch.setenv("DISTILL_TEST_KEY", SECRET)
    monkeypatch.chdir(tmp_path)
    server = FakeServer()
    with serve_in_thread(server) as url:
        params = load_params(
            write_params(
                tmp_path / "params.yaml",
                task="toy",
                method="zerogen",
                generate={"n_per_label": 4, "min_words": 3},
                teacher={"backend": "openai", "base_url": url, "model": "fake", "api_key_env": "DISTILL_TEST_KEY"},
            )
        )
        prompts.run(params, str(toy_task), "w/prompts.jsonl")
        generate.run(params, str(toy_task), "w/prompts.jsonl", "w/generated.jsonl", "m/generate.json")
        server.faults = ["401"]
        with pytest.raises(DistillError) as e:
            generate.run(
                params.model_copy(update={"seed": 1}), str(toy_task), "w/prompts.jsonl", "w/g2.jsonl", "m/g2.json"
            )
    assert server.auth == {f"Bearer {SECRET}"}
    assert (tmp_path / "w/generated.jsonl").stat().st_size > 0 and (tmp_path / ".cache/llm.sqlite").is_file()
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(written) >= 5
    needle = b"SECRET123"
    assert [p for p in written if needle in p.read_bytes()] == []
    out = capsys.readouterr()
    assert "SECRET123" not in out.out + out.err + str(e.value)


# -- pure wire-format helpers ------------------------------------------------------------------------------------


def test_wire_helpers():
    assert (
        fmt.endpoint_id("https://bob:pw@api.example.com:8443/v1/?key=abc", "m", "chat")
        == "openai:api.example.com:8443/v1/m|chat"
    )
    assert fmt.retry_after_s({"retry-after-ms": "250"}) == 0.25 and fmt.retry_after_s({"retry-after": "3"}) == 3.0
    assert 0 <= fmt.retry_after_s({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) <= 0.0 + 1e-9
    assert fmt.retry_after_s({"retry-after": "soon"}) is None and fmt.retry_after_s({}) is None
    import random

    rng = random.Random(0)
    assert fmt.backoff_s(3, 1.0, None, rng) <= 8.0 and fmt.backoff_s(30, 1.0, None, rng) <= fmt.MAX_DELAY_S
    assert fmt.backoff_s(0, 1.0, 5.0, rng) == 5.0
    assert fmt.strip_prefix(' "a nice film" x', '"') == 'a nice film" x' and fmt.strip_prefix("plain", '"') == "plain"
    assert fmt.answer_scores("Positive.", (" negative", " positive")) == [fmt.UNKNOWN, 0.0]
    assert fmt.answer_scores("no idea", (" negative", " positive")) is None
    assert fmt.one_line(f"bad\nkey {SECRET}", SECRET) == "bad key ***"

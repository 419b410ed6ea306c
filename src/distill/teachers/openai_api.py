"""A teacher behind any OpenAI-compatible endpoint: OpenAI, vLLM, Ollama, llama.cpp server, `distill serve`.

Each synchronous batch call (what `Teacher` asks for) becomes a bounded-concurrency asyncio gather on a
private event loop in a background thread (so it also works when the caller already runs a loop, e.g. a
notebook). The official client's own retries are off: ours count every retry and rejection into `counters`
(copied into the stage's llm.* metrics), honour Retry-After, and turn errors no retry can fix (bad key,
unknown model, bad request) into one-line DistillErrors at once. The key is read from the environment
variable named by `teacher.api_key_env` and lives only inside the client: it is never part of the model id
(the cache key), a message or a counter.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import threading
from collections import Counter
from typing import Any, Awaitable, Callable, Sequence, TypeVar

import openai

from distill.core.io import DistillError
from distill.teachers import api_format as fmt
from distill.teachers.base import Decoding, GenRequest, GenResult, ScoreRequest

T = TypeVar("T")
RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
# Refusals that mean "this server has no such endpoint/feature" while probing a scoring method.
NO_FEATURE_STATUS = {400, 404, 405, 422, 501}
SCORE_METHODS = ("echo", "top_logprobs", "answer")


class Refused(DistillError):
    """The server refused a request in a way no retry fixes (status 4xx other than 408/409/425/429)."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


def read_key(env_name: str | None) -> str:
    if not env_name:
        return "none"  # local servers need no key; the client insists on a string
    key = os.environ.get(env_name, "")
    if not key.strip():  # the name is shown only when it cannot be a pasted key
        from distill.core.secrets import looks_like_key

        named = "" if looks_like_key(env_name) else f" {env_name}"
        raise DistillError(f"teacher.api_key_env: environment variable{named} is not set")
    key = key.strip()
    if not key.isascii() or any(c.isspace() for c in key):  # httpx would fail deep inside with the key in its state
        raise DistillError(
            f"teacher.api_key_env: the value of {env_name} is not a valid API key "
            "(a non-ASCII or whitespace character; a pasted quote?)"
        )
    return key


class OpenAIBackend:
    def __init__(self, params):
        """params: TeacherParams (backend: openai)."""
        self.p = params
        self._key = read_key(params.api_key_env)
        self._secret = None if params.api_key_env is None else self._key
        self.model_id = fmt.endpoint_id(params.base_url, params.model, params.api, params.prefix_as)
        # Label scores depend on the route too (exact log-probs vs a parsed answer): switching it must not reuse them.
        self.score_id = f"{self.model_id}|score_via:{params.score_via}"
        self.host = fmt.api_host(params.base_url)
        self.counters: Counter = Counter()
        self._method = SCORE_METHODS.index(params.score_via) if params.score_via != "auto" else 0
        self._rng = random.Random()  # jitter only: never affects an answer
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, name="openai-teacher", daemon=True).start()
        self._client: openai.AsyncOpenAI | None = None
        self._slots: asyncio.Semaphore | None = None
        self._halt: Refused | None = None  # a refused key: no request in this run may be sent after it

    # -- the synchronous interface -------------------------------------------------------------------------
    def generate(self, requests: Sequence[GenRequest], decoding: Decoding) -> list[GenResult]:
        return self._gather([self._generate_one(r, decoding) for r in requests])

    def score(self, requests: Sequence[ScoreRequest]) -> list[list[float] | None]:
        return self._gather([self._score_one(r) for r in requests])

    def close(self) -> None:
        if self._client is not None:
            asyncio.run_coroutine_threadsafe(self._client.close(), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)

    def _gather(self, coros: list[Awaitable[T]]) -> list[T]:
        async def run() -> list[T]:
            if self._client is None:  # created on the loop it will run on (its connection pool belongs to it)
                self._client = openai.AsyncOpenAI(
                    base_url=self.p.base_url, api_key=self._key, max_retries=0, timeout=self.p.timeout_s
                )
                self._slots = asyncio.Semaphore(self.p.concurrency)
            tasks = [asyncio.ensure_future(c) for c in coros]
            try:
                return await asyncio.gather(*tasks)
            finally:
                for t in tasks:  # one request failed for good: don't leave the others running
                    t.cancel()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result()

    # -- generation -------------------------------------------------------------------------------------------
    async def _generate_one(self, r: GenRequest, decoding: Decoding) -> GenResult:
        kw: dict[str, Any] = dict(
            model=self.p.model,
            seed=r.seed,
            temperature=decoding.temperature,
            top_p=decoding.top_p,
            max_tokens=decoding.max_new_tokens,
        )
        if decoding.top_k > 0:  # not an OpenAI parameter; vLLM, llama.cpp and distill serve read it
            kw["extra_body"] = {"top_k": decoding.top_k}
        if self.p.api == "completions":
            call = lambda: self._client.completions.create(prompt=fmt.plain_prompt(r), **kw)  # noqa: E731
            parse = fmt.parse_completion
        else:
            messages, extra = fmt.chat_messages(r, self.p.prefix_as)
            kw["extra_body"] = {**kw.get("extra_body", {}), **extra} or None
            call = lambda: self._client.chat.completions.create(messages=messages, **kw)  # noqa: E731
            parse = lambda resp: fmt.parse_chat(resp, r.prefix, self.p.prefix_as)  # noqa: E731
        res = await self._call(call, parse)
        return GenResult("", 0, 0, "error") if res is None else res

    # -- label scoring ---------------------------------------------------------------------------------------
    async def _score_one(self, r: ScoreRequest) -> list[float] | None:
        """Try scoring methods from the best one still believed to work; a method the server shows it lacks
        is dropped for the rest of the run (counted as fallback.<method>)."""
        while True:
            method = SCORE_METHODS[self._method]
            try:
                scores = await getattr(self, f"_score_{method}")(r)
            except (fmt.Unsupported, Refused) as e:
                last_resort = self.p.score_via != "auto" or method == SCORE_METHODS[-1]
                if isinstance(e, Refused) and (e.status not in NO_FEATURE_STATUS or last_resort):
                    raise
                if last_resort:
                    raise DistillError(
                        f"teacher.score_via: {method} scoring does not work with {self.host} "
                        f"({fmt.one_line(e, self._secret)}); try score_via: auto"
                    ) from None
                if self._method == SCORE_METHODS.index(method):
                    self._method += 1
                    self.counters[f"fallback.{method}"] += 1
                continue
            if scores is not None:
                self.counters[f"scored_by.{method}"] += 1
            return scores

    async def _score_echo(self, r: ScoreRequest) -> list[float] | None:
        head = r.prefix + r.text
        prompts = [head + o for o in r.options]
        call = lambda: self._client.completions.create(  # noqa: E731
            model=self.p.model, prompt=prompts, echo=True, logprobs=1, max_tokens=1, temperature=0.0
        )
        # max_tokens=1, not 0: vLLM refuses 0; the one generated token lies past the prompt and is ignored.

        def parse(resp: Any) -> list[float]:
            choices = sorted(resp.choices or [], key=lambda c: c.index)
            if len(choices) != len(prompts):
                raise fmt.OffFormat("choice_count")
            return [fmt.echo_logprob(c, len(head), len(p)) for c, p in zip(choices, prompts)]

        return await self._call(call, parse, score=True)

    async def _score_top_logprobs(self, r: ScoreRequest) -> list[float] | None:
        call = lambda: self._client.chat.completions.create(  # noqa: E731
            model=self.p.model,
            messages=fmt.scoring_chat(r.prefix, r.text, r.options),
            logprobs=True,
            top_logprobs=20,
            max_tokens=3,
            temperature=0.0,
            seed=0,
        )
        return await self._call(call, lambda resp: fmt.first_token_scores(resp, r.options), score=True)

    async def _score_answer(self, r: ScoreRequest) -> list[float] | None:
        call = lambda: self._client.chat.completions.create(  # noqa: E731
            model=self.p.model,
            messages=fmt.scoring_chat(r.prefix, r.text, r.options),
            max_tokens=8,
            temperature=0.0,
            seed=0,
        )

        def parse(resp: Any) -> list[float]:
            scores = fmt.answer_scores(fmt.chat_text(resp), r.options)
            if scores is None:  # a real answer that names no option: no preference (equal scores), cached
                self.counters["rejected.unparsed_answer"] += 1
                return [0.0] * len(r.options)
            return scores

        return await self._call(call, parse, score=True)

    # -- one request, with retries ---------------------------------------------------------------------------
    async def _call(
        self, call: Callable[[], Awaitable[Any]], parse: Callable[[Any], T], score: bool = False
    ) -> T | None:
        """call() then parse(); retried on rate limits, 5xx, timeouts, dropped connections and off-format
        replies. A request whose replies stay off-format returns None (the Teacher does not cache it); one
        whose server stays unreachable stops the stage with a DistillError."""
        last = "?"
        for attempt in range(self.p.max_retries + 1):
            wait = None
            async with self._slots:  # the concurrency bound; released while backing off
                if self._halt is not None:
                    raise self._halt
                try:
                    resp = await call()
                    value = fmt.parse_safely(parse, resp)
                    if score:
                        pt, ct = fmt.usage_tokens(resp)
                        self.counters["score_prompt_tokens"] += pt
                        self.counters["score_completion_tokens"] += ct
                    return value
                except fmt.OffFormat as e:
                    last = e.reason
                    self.counters[f"rejected.{e.reason}"] += 1
                except (json.JSONDecodeError, openai.APIResponseValidationError):
                    last = "malformed_json"
                    self.counters["rejected.malformed_json"] += 1
                except openai.APIStatusError as e:
                    if e.status_code not in RETRY_STATUS and e.status_code < 500:
                        raise self._refused(e) from None
                    last, wait = str(e.status_code), fmt.retry_after_s(e.response.headers)
                except openai.APITimeoutError:
                    last = "timeout"
                except openai.APIConnectionError:
                    last = "connection"
            if attempt < self.p.max_retries:
                self.counters["retries"] += 1
                self.counters[f"retries.{last}"] += 1
                await asyncio.sleep(fmt.backoff_s(attempt, self.p.retry_backoff_s, wait, self._rng))
        if last in ("timeout", "connection") or last.isdigit():
            raise DistillError(
                f"teacher at {self.host}: no answer after {self.p.max_retries + 1} tries "
                f"(last: {last}); is the server up? (teacher.base_url, teacher.max_retries)"
            )
        if last == "malformed_json":  # not one odd completion: the server itself does not speak the API there
            raise DistillError(
                f"teacher at {self.host}: {self.p.max_retries + 1} replies were not OpenAI API JSON; "
                "is teacher.base_url the API root (it usually ends in /v1)?"
            )
        return None

    def _refused(self, e: openai.APIStatusError) -> Refused:
        code = e.status_code
        if code in (401, 403):  # the server's text may quote the key: say nothing of it
            self._halt = Refused(
                f"teacher at {self.host}: HTTP {code}, the API key was refused "
                f"(teacher.api_key_env: {self.p.api_key_env or 'not set'})",
                code,
            )
            return self._halt
        said = fmt.one_line(fmt.server_message(e.body) or e.message, self._secret)
        if code == 404 and "model" in said.lower():
            return Refused(f"teacher.model: '{self.p.model}' not found at {self.host} (HTTP 404: {said})", code)
        return Refused(f"teacher at {self.host}: HTTP {code}: {said}", code)

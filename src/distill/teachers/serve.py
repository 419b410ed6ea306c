"""`distill serve`: the embedded teacher behind the OpenAI API (FastAPI + uvicorn, loopback by default).

Endpoints: GET /v1/models, POST /v1/completions (echo + logprobs: prompt log-probs, what exact label scoring
needs), POST /v1/chat/completions (logprobs + top_logprobs; a final assistant message is continued, as
llama.cpp and Ollama do and vLLM does with continue_final_message). `seed` gives each request its own
sampler, so a served sample equals the in-process one for the same prompt and seed, whatever else shares its
batch. Concurrent requests are collected for a few milliseconds and run as one forward pass (`Batcher`).
Not supported: n > 1, stop strings, streaming (refused with 400 or ignored, as documented in the README).

No request takes the server down: bodies are checked against the OpenAI schema, prompts against the context
before any forward pass, requests have a time bound, and the model's daemon thread does not delay SIGTERM.
"""

from __future__ import annotations

import asyncio
import functools
import random
import time
import uuid
from contextlib import asynccontextmanager
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from distill.teachers.base import Decoding, GenRequest
from distill.teachers.batching import Batcher, Worker
from distill.teachers.local import LocalBackend, max_token_chars

GRACE_S = 2  # after SIGTERM, in-flight requests get this long; then they are cancelled and the process exits


class Body(BaseModel):
    """Fields and bounds of the OpenAI schema (a bad value is a 400 naming it); unknown fields are ignored, as
    vLLM does. null means the default: the OpenAI schema makes these fields nullable."""

    model_config = ConfigDict(extra="allow")
    model: str
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    top_k: int = Field(0, ge=-1)  # -1 and 0: off, as in vLLM
    seed: int | None = Field(None, ge=-(2**63), lt=2**63)
    n: int = Field(1, ge=1)
    stream: bool = False

    @model_validator(mode="before")
    @classmethod
    def _null_is_default(cls, data: Any) -> Any:
        return {k: v for k, v in data.items() if v is not None} if isinstance(data, dict) else data


class CompletionBody(Body):
    prompt: str | list[str]
    max_tokens: int = Field(16, ge=0)
    echo: bool = False
    logprobs: int | None = Field(None, ge=0, le=20)

    @field_validator("prompt")
    @classmethod
    def _not_empty(cls, prompt: str | list[str]) -> str | list[str]:
        if prompt == []:
            raise ValueError("an empty list")
        if "" in ([prompt] if isinstance(prompt, str) else prompt):
            raise ValueError("an empty prompt (this server adds no start token to continue from)")
        return prompt


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str = ""


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):  # content parts: keep the text ones
            return "".join(p.text for p in self.content if p.type == "text")
        return self.content or ""


class ChatBody(Body):
    messages: list[Message] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=0)
    max_completion_tokens: int | None = Field(None, ge=0)
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=20)


class ApiError(Exception):
    def __init__(self, status: int, message: str, code: str = "invalid_request_error", param: str | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param


def bad_body(errors: list[dict]) -> tuple[str, str | None]:
    """A validation error as (message, field): `top_p: Input should be greater than 0 (got -0.5)`. Of a union's
    errors (one per type tried), the deepest says most: `prompt.1`, not `prompt.str`, for ["ok", 7]."""

    def path(err: dict) -> list[str]:  # field names and list indices, not union tags (str, list[str], none)
        loc = err.get("loc", ())[1:]  # after "body"
        return [str(p) for p in loc if isinstance(p, int) or (p.isidentifier() and p not in ("str", "int", "none"))]

    if not errors or errors[0].get("type") == "json_invalid":
        return f"the request body is not JSON ({(errors or [{}])[0].get('ctx', {}).get('error', 'empty')})", None
    worst = max(errors, key=lambda e: len(path(e)))
    field, got = ".".join(path(worst)) or "body", worst.get("input")
    short = isinstance(got, (int, float, bool)) or (isinstance(got, str) and len(got) < 40)
    message = worst.get("msg", "invalid value").removeprefix("Value error, ")
    return f"{field}: {message}" + (f" (got {got!r})" if short else ""), field


def create_app(
    backend: LocalBackend,
    name: str,
    window_s: float = 0.005,
    max_batch: int = 32,
    max_tokens_cap: int = 4096,
    request_timeout: float = 300.0,
    max_group_tokens: int = 32768,
):
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse

    model, tok = backend._load()  # load before the first request (and fail at start, not on a call)
    context = int(getattr(model.config, "max_position_embeddings", 2048))
    stops = backend.stop_ids()
    per_token = max_token_chars(tok)

    def run(kind: tuple, items: list) -> list:
        if kind[0] == "gen":
            return backend.sample_ids([ids for ids, _ in items], [seed for _, seed in items], kind[1])
        return backend.token_logprobs(items, top_k=kind[1])

    def cost(kind: tuple, item) -> int:  # padded tokens of one row: the prompt, plus the new ones for generation
        return len(item[0]) + kind[1].max_new_tokens if kind[0] == "gen" else len(item)

    batcher = Batcher(run, window_s, max_batch, cost, max_group_tokens)
    tokenizer: list[Worker] = []  # off the event loop: a long prompt takes a while (the model has its own thread)

    @asynccontextmanager
    async def lifespan(app):
        tokenizer[:] = [Worker("distill-serve-tokenizer")]
        worker = batcher.start()
        yield
        worker.cancel()
        tokenizer[0].stop()

    app = FastAPI(title="distill serve", lifespan=lifespan)
    app.state.batcher = batcher

    def error(status: int, message: str, code: str, param: str | None = None) -> JSONResponse:
        kind = "invalid_request_error" if status < 500 else "server_error"
        return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": code}}, status)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, e: ApiError):
        return error(e.status, e.message, e.code, e.param)

    @app.exception_handler(RequestValidationError)
    async def _bad_body(request: Request, e: RequestValidationError):
        message, field = bad_body(e.errors())
        return error(400, message, "invalid_request", field)

    @app.exception_handler(Exception)
    async def _crash(request: Request, e: Exception):  # JSON, not a bare 500; uvicorn logs the traceback
        line = (str(e).strip().splitlines() or [""])[0][:300]
        return error(500, f"internal error: {type(e).__name__}{': ' * bool(line)}{line}", "internal_error")

    def bounded(handler):
        """The request's time bound: its queued work is dropped when it runs out (Batcher.groups)."""

        @functools.wraps(handler)
        async def wrapper(body):
            try:
                return await asyncio.wait_for(handler(body), request_timeout)
            except asyncio.TimeoutError:  # TimeoutError from 3.11 on; distinct on 3.10
                raise ApiError(
                    504, f"no answer within {request_timeout:g} s (distill serve --request-timeout)", "timeout"
                ) from None

        return wrapper

    def check(body: Body) -> int:
        """The request's seed; refuses what this server cannot do."""
        if body.model != name:
            raise ApiError(
                404, f"The model '{body.model}' does not exist (this server has '{name}')", "model_not_found", "model"
            )
        if body.n != 1 or body.stream:
            raise ApiError(
                400, "only n=1 without streaming is supported", "unsupported", "stream" if body.stream else "n"
            )
        return body.seed if body.seed is not None else random.getrandbits(32)

    def too_long(tokens: int, at_least: bool = False) -> ApiError:
        return ApiError(
            400,
            f"prompt is {'at least ' * at_least}{tokens} tokens; this model's context is {context} tokens",
            "context_length_exceeded",
            "prompt",
        )

    def check_chars(text: str) -> None:
        if per_token and len(text) > context * per_token:  # provably too long (max_token_chars): don't tokenize it
            raise too_long(-(-len(text) // per_token), at_least=True)

    def room(ids: list[int], max_tokens: int, asked: bool, field: str = "max_tokens") -> int:
        """max_tokens, checked: prompt + new tokens fit the context (every path: generation and scoring)."""
        if not ids:
            raise ApiError(400, "prompt: it has no tokens", "invalid_request", "prompt")
        if len(ids) > context:
            raise too_long(len(ids))
        # The KV cache is preallocated for prompt + max_tokens: an unbounded request would try to allocate it all.
        limit = min(max_tokens_cap, context - len(ids))
        if not asked:  # the default shrinks to what fits
            return min(max_tokens, limit)
        if max_tokens > limit:
            raise ApiError(
                400,
                f"{field}: {max_tokens} is more than this server allows for this prompt ({limit}: "
                f"--max-tokens {max_tokens_cap}, context {context} tokens, prompt {len(ids)})",
                "max_tokens_too_large",
                field,
            )
        return max_tokens

    async def sample(ids: list[int], seed: int, body: Body, max_tokens: int) -> tuple[list[int], str, int]:
        """New tokens (stop token removed), the finish reason, and the tokens generated (stop token included,
        as the in-process backend counts them). max_tokens has been through room()."""
        if max_tokens <= 0:
            return [], "length", 0
        decoding = Decoding(
            max_new_tokens=max_tokens, temperature=body.temperature, top_p=body.top_p, top_k=max(0, body.top_k)
        )
        out = await batcher.submit(("gen", decoding), (ids, seed))
        return (out[:-1], "stop", len(out)) if out and out[-1] in stops else (out, "length", len(out))

    def alternatives(top: list[tuple[int, float]]) -> dict[str, float]:
        return {tok.decode([t]): lp for t, lp in top}

    def usage(prompt: int, completion: int) -> dict[str, int]:
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    async def encode_prompt(prompt: str, body: CompletionBody) -> tuple[list[int], list, int]:
        """Token ids, their character spans, and max_tokens checked against the context."""
        check_chars(prompt)
        enc = await tokenizer[0].call(
            functools.partial(tok, add_special_tokens=False, return_offsets_mapping=True), prompt
        )
        ids = enc["input_ids"]
        return ids, enc["offset_mapping"], room(ids, body.max_tokens, "max_tokens" in body.model_fields_set)

    async def complete_one(index: int, prompt: str, encoded: tuple, body: CompletionBody, seed: int):
        """(choice, prompt tokens, completion tokens)"""
        ids, spans, max_tokens = encoded
        k = None if body.logprobs is None else max(1, body.logprobs)
        if body.echo and k is not None and max_tokens == 1 and body.temperature == 0:
            # Exact scoring calls: the prompt log-probs pass also gives the greedy next token (one pass, not two).
            entries = await batcher.submit(("logprobs", k), ids)
            nxt = entries[-1][1][0][0]
            new, finish, n = ([], "stop", 1) if nxt in stops else ([nxt], "length", 1)
            entries = entries[:-1] + ([(entries[-1][1][0][1], entries[-1][1])] if new else [])
        else:
            new, finish, n = await sample(ids, seed, body, max_tokens)
            entries = await batcher.submit(("logprobs", k), ids + new) if k is not None else None
        completion = tok.decode(new, skip_special_tokens=True)
        choice = {
            "index": index,
            "text": (prompt if body.echo else "") + completion,
            "finish_reason": finish,
            "logprobs": None,
        }
        if entries is not None:
            pieces = [(prompt[s:e], s) for s, e in spans] if body.echo else []
            at = len(prompt) if body.echo else 0
            for t in new:
                pieces.append((tok.decode([t]), at))
                at += len(pieces[-1][0])
            rows = entries[: len(ids) + len(new)] if body.echo else entries[len(ids) : len(ids) + len(new)]
            choice["logprobs"] = {
                "tokens": [p for p, _ in pieces],
                "text_offset": [o for _, o in pieces],
                "token_logprobs": [lp for lp, _ in rows],
                "top_logprobs": [alternatives(top) if lp is not None else None for lp, top in rows],
            }
        return choice, len(ids), n

    def chat_ids(msgs: list[tuple[str, str]], prefix: str, seed: int) -> list[int]:
        from jinja2.exceptions import TemplateError

        try:
            text = backend.render(GenRequest(messages=tuple(msgs), prefix=prefix, seed=seed))
        except TemplateError as e:  # e.g. a template that wants user and assistant turns to alternate
            raise ApiError(
                400, f"messages: the model's chat template refuses them ({e})", "invalid_request", "messages"
            ) from None
        check_chars(text)
        return backend.encode(text)

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": name, "object": "model", "created": 0, "owned_by": "distill"}]}

    @app.post("/v1/completions")
    @bounded
    async def completions(body: CompletionBody):
        seed = check(body)
        prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
        encoded = await asyncio.gather(*[encode_prompt(p, body) for p in prompts])  # every prompt fits, or no work
        done = await asyncio.gather(*[complete_one(i, *pe, body, seed) for i, pe in enumerate(zip(prompts, encoded))])
        return {
            "id": f"cmpl-{uuid.uuid4().hex}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": name,
            "choices": [c for c, _, _ in done],
            "usage": usage(sum(p for _, p, _ in done), sum(n for _, _, n in done)),
        }

    @app.post("/v1/chat/completions")
    @bounded
    async def chat(body: ChatBody):
        seed = check(body)
        msgs = [(m.role, m.text()) for m in body.messages]
        prefix = msgs.pop()[1] if msgs and msgs[-1][0] == "assistant" else ""  # continue a final assistant message
        ids = await tokenizer[0].call(chat_ids, msgs, prefix, seed)
        field = "max_completion_tokens" if body.max_completion_tokens is not None else "max_tokens"
        asked = body.max_completion_tokens if body.max_completion_tokens is not None else body.max_tokens
        max_tokens = room(ids, 256 if asked is None else asked, asked is not None, field)
        new, finish, n = await sample(ids, seed, body, max_tokens)
        logprobs = None
        if body.logprobs:
            entries = await batcher.submit(("logprobs", max(1, body.top_logprobs or 0)), ids + new)
            logprobs = {
                "content": [
                    {
                        "token": tok.decode([t]),
                        "logprob": lp,
                        "bytes": list(tok.decode([t]).encode()),
                        "top_logprobs": [
                            {"token": s, "logprob": v, "bytes": list(s.encode())} for s, v in alternatives(top).items()
                        ],
                    }
                    for t, (lp, top) in zip(new, entries[len(ids) : len(ids) + len(new)])
                ]
            }
        message = {"role": "assistant", "content": tok.decode(new, skip_special_tokens=True)}
        choice = {"index": 0, "message": message, "finish_reason": finish, "logprobs": logprobs}
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": name,
            "choices": [choice],
            "usage": usage(len(ids), n),
        }

    return app


def serve(
    model: str,
    name: str | None,
    host: str,
    port: int,
    window_ms: float,
    max_batch: int,
    max_tokens: int = 4096,
    device: str = "auto",
    dtype: str = "auto",
    request_timeout: float = 300.0,
) -> None:
    import uvicorn

    backend = LocalBackend(model, device=device, dtype=dtype, device_field="distill serve --device")
    app = create_app(backend, name or model, window_ms / 1000, max_batch, max_tokens, request_timeout)
    url = f"http://{host}:{port}/v1"
    print(f"distill serve: '{name or model}' at {url} (teacher.backend: openai, teacher.base_url: {url})")
    # timeout_graceful_shutdown: without it uvicorn waits for every open request before exiting, and a request
    # waiting on a long forward pass made SIGTERM look ignored
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=GRACE_S)

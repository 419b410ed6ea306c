"""`distill serve`: the embedded teacher behind the OpenAI API (FastAPI + uvicorn, loopback by default).

Endpoints: GET /v1/models, POST /v1/completions (echo + logprobs: prompt log-probs, what exact label scoring
needs), POST /v1/chat/completions (logprobs + top_logprobs; a final assistant message is continued, as
llama.cpp and Ollama do and vLLM does with continue_final_message). `seed` gives each request its own
sampler, so a served sample equals the in-process one for the same prompt and seed, whatever else shares its
batch. Concurrent requests are collected for a few milliseconds and run as one forward pass (`Batcher`).
Not supported: n > 1, stop strings, streaming (refused with 400 or ignored, as documented in the README).
"""
from __future__ import annotations

import asyncio
import random
import time
import uuid
from contextlib import asynccontextmanager
from typing import Any, Callable, Hashable

from pydantic import BaseModel, ConfigDict, Field

from distill.teachers.base import Decoding, GenRequest
from distill.teachers.local import LocalBackend


class Batcher:
    """Collects requests for `window_s`, groups those that can share a forward pass (same kind and decoding)
    and runs each group in a worker thread, one group at a time (one model, one set of CPU cores)."""

    def __init__(self, run: Callable[[Hashable, list], list], window_s: float = 0.005, max_batch: int = 32):
        self.run, self.window_s, self.max_batch = run, window_s, max_batch
        self.queue: asyncio.Queue | None = None
        self.sizes: list[int] = []  # rows per forward group, for tests and logs

    async def submit(self, kind: Hashable, item: Any) -> Any:
        fut = asyncio.get_running_loop().create_future()
        await self.queue.put((kind, item, fut))
        return await fut

    async def work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            pending = [await self.queue.get()]
            deadline = loop.time() + self.window_s
            while len(pending) < self.max_batch and (left := deadline - loop.time()) > 0:
                try:
                    pending.append(await asyncio.wait_for(self.queue.get(), left))
                except asyncio.TimeoutError:
                    break
            groups: dict[Hashable, list] = {}
            for kind, item, fut in pending:
                groups.setdefault(kind, []).append((item, fut))
            for kind, entries in groups.items():
                self.sizes.append(len(entries))
                try:
                    results = await asyncio.to_thread(self.run, kind, [item for item, _ in entries])
                except Exception as e:  # noqa: BLE001 - handed to every waiting request
                    results = [e] * len(entries)
                for (_, fut), res in zip(entries, results):
                    if not fut.done():  # the client may have gone away
                        fut.set_exception(res) if isinstance(res, Exception) else fut.set_result(res)


class Body(BaseModel):
    model_config = ConfigDict(extra="allow")  # unknown OpenAI fields are ignored, as vLLM does
    model: str
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None
    n: int = 1
    stream: bool = False


class CompletionBody(Body):
    prompt: str | list[str]
    max_tokens: int = Field(16, ge=0)
    echo: bool = False
    logprobs: int | None = None


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):  # content parts: keep the text ones
            return "".join(p.get("text", "") for p in self.content if p.get("type") == "text")
        return self.content or ""


class ChatBody(Body):
    messages: list[Message]
    max_tokens: int | None = Field(None, ge=0)
    max_completion_tokens: int | None = Field(None, ge=0)
    logprobs: bool = False
    top_logprobs: int | None = None


class ApiError(Exception):
    def __init__(self, status: int, message: str, code: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


def create_app(backend: LocalBackend, name: str, window_s: float = 0.005, max_batch: int = 32, max_tokens_cap: int = 4096):
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse

    model, tok = backend._load()  # load before the first request (and fail at start, not on a call)
    context = int(getattr(model.config, "max_position_embeddings", 2048))
    stops = backend.stop_ids()

    def run(kind: tuple, items: list) -> list:
        if kind[0] == "gen":
            return backend.sample_ids([ids for ids, _ in items], [seed for _, seed in items], kind[1])
        return backend.token_logprobs(items, top_k=kind[1])

    batcher = Batcher(run, window_s, max_batch)

    @asynccontextmanager
    async def lifespan(app):
        batcher.queue = asyncio.Queue()
        worker = asyncio.create_task(batcher.work())
        yield
        worker.cancel()

    app = FastAPI(title="distill serve", lifespan=lifespan)
    app.state.batcher = batcher

    def error(status: int, message: str, code: str) -> JSONResponse:
        return JSONResponse({"error": {"message": message, "type": "invalid_request_error", "code": code}}, status_code=status)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, e: ApiError):
        return error(e.status, e.message, e.code)

    @app.exception_handler(RequestValidationError)
    async def _bad_body(request: Request, e: RequestValidationError):
        first = e.errors()[0] if e.errors() else {}
        return error(400, f"{'.'.join(map(str, first.get('loc', ())))}: {first.get('msg', 'invalid request')}", "invalid_request")

    def check(body: Body) -> int:
        """The request's seed; refuses what this server cannot do."""
        if body.model != name:
            raise ApiError(404, f"The model '{body.model}' does not exist (this server has '{name}')", "model_not_found")
        if body.n != 1 or body.stream:
            raise ApiError(400, "only n=1 without streaming is supported", "unsupported")
        return body.seed if body.seed is not None else random.getrandbits(32)

    async def sample(ids: list[int], seed: int, body: Body, max_tokens: int) -> tuple[list[int], str, int]:
        """New tokens (stop token removed), the finish reason, and the tokens generated (stop token included,
        as the in-process backend counts them)."""
        if not ids:
            raise ApiError(400, "empty prompt")
        if max_tokens <= 0:
            return [], "length", 0
        # The KV cache is preallocated for prompt + max_tokens: an unbounded request would try to allocate it all.
        limit = min(max_tokens_cap, context - len(ids))
        if max_tokens > limit:
            raise ApiError(400, f"max_tokens: {max_tokens} is more than this server allows for this prompt ({limit}: "
                                f"--max-tokens {max_tokens_cap}, context {context} tokens, prompt {len(ids)})", "max_tokens_too_large")
        decoding = Decoding(max_new_tokens=max_tokens, temperature=body.temperature, top_p=body.top_p, top_k=body.top_k)
        out = await batcher.submit(("gen", decoding), (ids, seed))
        return (out[:-1], "stop", len(out)) if out and out[-1] in stops else (out, "length", len(out))

    def alternatives(top: list[tuple[int, float]]) -> dict[str, float]:
        return {tok.decode([t]): lp for t, lp in top}

    def usage(prompt: int, completion: int) -> dict[str, int]:
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    async def complete_one(index: int, prompt: str, body: CompletionBody, seed: int) -> tuple[dict, int, int]:
        enc = tok(prompt, add_special_tokens=False, return_offsets_mapping=True)
        ids, spans = enc["input_ids"], enc["offset_mapping"]
        k = None if body.logprobs is None else max(1, body.logprobs)
        if body.echo and k is not None and body.max_tokens == 1 and body.temperature == 0:
            # Exact scoring calls: the prompt log-probs pass also gives the greedy next token (one pass, not two).
            if not ids:
                raise ApiError(400, "empty prompt")
            entries = await batcher.submit(("logprobs", k), ids)
            nxt = entries[-1][1][0][0]
            new, finish, n = ([], "stop", 1) if nxt in stops else ([nxt], "length", 1)
            entries = entries[:-1] + ([(entries[-1][1][0][1], entries[-1][1])] if new else [])
        else:
            new, finish, n = await sample(ids, seed, body, body.max_tokens)
            entries = await batcher.submit(("logprobs", k), ids + new) if k is not None else None
        completion = tok.decode(new, skip_special_tokens=True)
        choice = {"index": index, "text": (prompt if body.echo else "") + completion, "finish_reason": finish, "logprobs": None}
        if entries is not None:
            pieces = [(prompt[s:e], s) for s, e in spans] if body.echo else []
            at = len(prompt) if body.echo else 0
            for t in new:
                pieces.append((tok.decode([t]), at))
                at += len(pieces[-1][0])
            rows = entries[: len(ids) + len(new)] if body.echo else entries[len(ids) : len(ids) + len(new)]
            choice["logprobs"] = {"tokens": [p for p, _ in pieces], "text_offset": [o for _, o in pieces],
                                  "token_logprobs": [lp for lp, _ in rows],
                                  "top_logprobs": [alternatives(top) if lp is not None else None for lp, top in rows]}
        return choice, len(ids), n

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": name, "object": "model", "created": 0, "owned_by": "distill"}]}

    @app.post("/v1/completions")
    async def completions(body: CompletionBody):
        seed = check(body)
        prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
        done = await asyncio.gather(*[complete_one(i, p, body, seed) for i, p in enumerate(prompts)])
        return {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()), "model": name,
                "choices": [c for c, _, _ in done], "usage": usage(sum(p for _, p, _ in done), sum(n for _, _, n in done))}

    @app.post("/v1/chat/completions")
    async def chat(body: ChatBody):
        seed = check(body)
        msgs = [(m.role, m.text()) for m in body.messages]
        prefix = msgs.pop()[1] if msgs and msgs[-1][0] == "assistant" else ""  # continue a final assistant message
        ids = backend.encode(backend.render(GenRequest(messages=tuple(msgs), prefix=prefix, seed=seed)))
        new, finish, n = await sample(ids, seed, body, body.max_completion_tokens or body.max_tokens or 256)
        logprobs = None
        if body.logprobs:
            entries = await batcher.submit(("logprobs", max(1, body.top_logprobs or 0)), ids + new)
            logprobs = {"content": [
                {"token": tok.decode([t]), "logprob": lp, "bytes": list(tok.decode([t]).encode()),
                 "top_logprobs": [{"token": s, "logprob": v, "bytes": list(s.encode())} for s, v in alternatives(top).items()]}
                for t, (lp, top) in zip(new, entries[len(ids) : len(ids) + len(new)])]}
        message = {"role": "assistant", "content": tok.decode(new, skip_special_tokens=True)}
        return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()), "model": name,
                "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": logprobs}],
                "usage": usage(len(ids), n)}

    return app


def serve(model: str, name: str | None, host: str, port: int, window_ms: float, max_batch: int, max_tokens: int = 4096,
          device: str = "auto", dtype: str = "auto") -> None:
    import uvicorn

    backend = LocalBackend(model, device=device, dtype=dtype, device_field="distill serve --device")
    app = create_app(backend, name or model, window_ms / 1000, max_batch, max_tokens)
    print(f"distill serve: '{name or model}' at http://{host}:{port}/v1 (teacher.backend: openai, teacher.base_url: http://{host}:{port}/v1)")
    uvicorn.run(app, host=host, port=port, log_level="warning")

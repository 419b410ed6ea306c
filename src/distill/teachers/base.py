"""The one teacher interface every method uses: `generate` (sample text) and `score` (label log-probs).

`Teacher` wraps a backend with the LLM cache, batching, a progress bar, call accounting and a spending
budget. Backends only implement uncached batch calls; they load their model lazily, so a fully cached stage
never loads it. A backend may answer that it could not answer (a GenResult with finish "error", a score row
None): the Teacher returns a neutral answer for it and does not cache it, so the next run asks again.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Protocol, Sequence

from tqdm.auto import tqdm

from distill.core.io import DistillError
from distill.teachers.cache import LLMCache, cache_key


@dataclass(frozen=True)
class Decoding:
    max_new_tokens: int = 48
    temperature: float = 1.0
    top_p: float = 0.9
    top_k: int = 0


@dataclass(frozen=True)
class GenRequest:
    messages: tuple[tuple[str, str], ...]  # ((role, content), ...): a chat prompt
    prefix: str = ""  # the assistant answer is pre-filled with this text
    seed: int = 0  # per-call seed: the same request with the same seed gives the same sample


@dataclass
class GenResult:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish: str  # "stop" (end of sequence), "length", or "error" (no usable answer: not cached)


@dataclass(frozen=True)
class ScoreRequest:
    prefix: str  # shared few-shot prefix (its KV state is computed once and reused)
    text: str  # the example, ending right before the answer
    options: tuple[str, ...]  # continuations to score, e.g. (" negative", " positive")


class Backend(Protocol):
    model_id: str  # name + weights hash; part of every cache key

    def generate(self, requests: Sequence[GenRequest], decoding: Decoding) -> list[GenResult]: ...

    def score(self, requests: Sequence[ScoreRequest]) -> list[list[float] | None]: ...  # None: no usable answer

    # Optional: `counters: dict[str, int]`, cumulative backend events (retries, rejections), copied into Stats.extra;
    # `score_id: str`, the label-score cache identity when it differs from model_id (an API's scoring route).


@dataclass
class Stats:
    calls: int = 0  # requests answered by the model
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0  # all backend time (generation and scoring)
    gen_seconds: float = 0.0  # generation only: the denominator of tokens_per_s
    # What producing every answer this run used cost when it was first computed (cached or not): a re-run that
    # is all cache hits reports calls 0 but the same data cost.
    data_answers: int = 0
    data_seconds: float = 0.0
    data_prompt_tokens: int = 0
    data_completion_tokens: int = 0
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        d = asdict(self)
        d.update(d.pop("extra"))
        d["tokens_per_s"] = round(self.completion_tokens / self.gen_seconds, 2) if self.gen_seconds else 0.0
        return d


@dataclass(frozen=True)
class Budget:
    """Spending limits of one Teacher (one stage run). Cached answers are free; None = no limit / no price."""

    max_calls: int | None = None
    max_cost: float | None = None
    price_per_1k_prompt: float | None = None
    price_per_1k_completion: float | None = None

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float | None:
        if self.price_per_1k_prompt is None and self.price_per_1k_completion is None:
            return None
        return (
            prompt_tokens * (self.price_per_1k_prompt or 0.0)
            + completion_tokens * (self.price_per_1k_completion or 0.0)
        ) / 1000


def _cacheable(answer: Any) -> bool:
    return answer is not None and not (isinstance(answer, dict) and answer.get("finish") == "error")


class Teacher:
    def __init__(self, backend: Backend, cache: LLMCache, progress: bool = True, budget: Budget = Budget()):
        self.backend, self.cache, self.progress, self.budget = backend, cache, progress, budget
        self.stats = Stats()

    def generate(
        self, requests: Sequence[GenRequest], decoding: Decoding, batch_size: int, desc: str = "generate"
    ) -> list[GenResult]:
        keys = [
            cache_key(
                kind="gen",
                model=self.backend.model_id,
                messages=r.messages,
                prefix=r.prefix,
                seed=r.seed,
                decoding=asdict(decoding),
            )
            for r in requests
        ]

        def call(batch: list[GenRequest]) -> list[dict]:
            results = self.backend.generate(batch, decoding)
            for res in results:
                self.stats.prompt_tokens += res.prompt_tokens
                self.stats.completion_tokens += res.completion_tokens
            return [asdict(res) for res in results]

        done = self._answer("gen", requests, keys, call, batch_size, desc, "sample", order=None)
        return [GenResult(**done[k]) for k in keys]

    def score(self, requests: Sequence[ScoreRequest], batch_size: int, desc: str = "score") -> list[list[float]]:
        model = getattr(self.backend, "score_id", self.backend.model_id)  # API backends: + the scoring route
        keys = [cache_key(kind="score", model=model, prefix=r.prefix, text=r.text, options=r.options) for r in requests]
        # Sorting by length keeps padding (wasted compute) low; the cache key does not depend on order.
        done = self._answer(
            "score", requests, keys, self.backend.score, batch_size, desc, "example", order=lambda r: len(r.text)
        )
        # An unanswered row gets equal log-probs: no preference, and not cached.
        return [done[k] if done[k] is not None else [0.0] * len(r.options) for k, r in zip(keys, requests)]

    def _answer(
        self,
        kind: str,
        requests: Sequence,
        keys: list[str],
        call: Callable[[list], list],
        batch_size: int,
        desc: str,
        unit: str,
        order: Callable | None,
    ) -> dict[str, Any]:
        """Cached answers, then the missing ones from the backend, batch by batch; each batch is cached as soon as
        it is answered, so a killed run (or a spent budget) loses at most the batch in flight."""
        cached = self.cache.get_with_seconds(keys)
        done = {k: v for k, (v, _) in cached.items()}
        for k in dict.fromkeys(keys):
            if k in cached:
                self._count_data(cached[k][0], cached[k][1])
        todo = [i for i, k in enumerate(keys) if k not in done]
        self.stats.cache_hits += len(requests) - len(todo)
        if order is not None:
            todo.sort(key=lambda i: order(requests[i]))
        # closed on an error too, so the one-line error starts on its own line, not after the bar
        with tqdm(total=len(todo), desc=desc, unit=unit, disable=not self.progress or not todo) as bar:
            start = 0
            while start < len(todo):
                idx = todo[start : start + self._room(batch_size, len(todo) - start)]
                t0 = time.perf_counter()
                answers = call([requests[i] for i in idx])
                self.stats.seconds += time.perf_counter() - t0
                if kind == "gen":
                    self.stats.gen_seconds += time.perf_counter() - t0
                self.stats.calls += len(idx)
                self.stats.extra.update(getattr(self.backend, "counters", {}))
                if (cost := self.cost()) is not None:
                    self.stats.extra["cost"] = round(cost, 6)  # lands in the stage metrics as llm.cost
                new = {keys[i]: a for i, a in zip(idx, answers)}
                share = (time.perf_counter() - t0) / max(len(idx), 1)
                self.cache.put_many(kind, self.backend.model_id, {k: a for k, a in new.items() if _cacheable(a)}, share)
                for a in new.values():
                    self._count_data(a, share)
                done.update(new)
                start += len(idx)
                bar.update(len(idx))
                if kind == "gen":
                    bar.set_postfix(tok_s=f"{self.stats.completion_tokens / max(self.stats.seconds, 1e-9):.0f}")
        if (
            data_cost := self.budget.cost(self.stats.data_prompt_tokens, self.stats.data_completion_tokens)
        ) is not None:
            self.stats.extra["data_cost"] = round(data_cost, 6)
        return done

    def _count_data(self, answer: Any, seconds: float) -> None:
        self.stats.data_answers += 1
        self.stats.data_seconds += seconds
        if isinstance(answer, dict):  # generation answers carry their token counts
            self.stats.data_prompt_tokens += int(answer.get("prompt_tokens", 0))
            self.stats.data_completion_tokens += int(answer.get("completion_tokens", 0))

    def _room(self, batch_size: int, left: int) -> int:
        """How many requests the next batch may hold; a DistillError once the budget is spent."""
        b = self.budget
        cost = self.cost()
        if b.max_cost is not None and cost is not None and cost >= b.max_cost:
            raise DistillError(
                f"teacher.max_cost: budget {b.max_cost} spent ({cost:.4f}); {left} requests not asked. "
                "Answers so far are cached: raise the budget and re-run to continue"
            )
        if b.max_calls is None:
            return batch_size
        room = b.max_calls - self.stats.calls
        if room <= 0:
            raise DistillError(
                f"teacher.max_calls: budget of {b.max_calls} calls spent; {left} requests not asked. "
                "Answers so far are cached: raise the budget and re-run to continue"
            )
        return min(batch_size, room)

    def cost(self) -> float | None:
        """Spent so far (prices per 1k tokens); scoring tokens count too where the backend reports them."""
        x = self.stats.extra
        return self.budget.cost(
            self.stats.prompt_tokens + x.get("score_prompt_tokens", 0),
            self.stats.completion_tokens + x.get("score_completion_tokens", 0),
        )

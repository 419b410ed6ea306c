"""The one teacher interface every method uses: `generate` (sample text) and `score` (label log-probs).

`Teacher` wraps a backend with the LLM cache, batching, a progress bar and call accounting. Backends
only implement uncached batch calls; they load their model lazily, so a fully cached stage never loads it.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Protocol, Sequence

from tqdm.auto import tqdm

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
    finish: str  # "stop" (end of sequence) or "length"


@dataclass(frozen=True)
class ScoreRequest:
    prefix: str  # shared few-shot prefix (its KV state is computed once and reused)
    text: str  # the example, ending right before the answer
    options: tuple[str, ...]  # continuations to score, e.g. (" negative", " positive")


class Backend(Protocol):
    model_id: str  # name + weights hash; part of every cache key

    def generate(self, requests: Sequence[GenRequest], decoding: Decoding) -> list[GenResult]: ...

    def score(self, requests: Sequence[ScoreRequest]) -> list[list[float]]: ...


@dataclass
class Stats:
    calls: int = 0  # requests answered by the model
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        d = asdict(self)
        d.update(d.pop("extra"))
        d["tokens_per_s"] = round(self.completion_tokens / self.seconds, 2) if self.seconds else 0.0
        return d


class Teacher:
    def __init__(self, backend: Backend, cache: LLMCache, progress: bool = True):
        self.backend, self.cache, self.progress = backend, cache, progress
        self.stats = Stats()

    def generate(self, requests: Sequence[GenRequest], decoding: Decoding, batch_size: int, desc: str = "generate") -> list[GenResult]:
        keys = [
            cache_key(kind="gen", model=self.backend.model_id, messages=r.messages, prefix=r.prefix, seed=r.seed, decoding=asdict(decoding))
            for r in requests
        ]
        done = self.cache.get_many(keys)
        todo = [i for i, k in enumerate(keys) if k not in done]
        self.stats.cache_hits += len(requests) - len(todo)
        bar = tqdm(total=len(todo), desc=desc, unit="sample", disable=not self.progress or not todo)
        for start in range(0, len(todo), batch_size):
            idx = todo[start : start + batch_size]
            t0 = time.perf_counter()
            results = self.backend.generate([requests[i] for i in idx], decoding)
            self.stats.seconds += time.perf_counter() - t0
            self.stats.calls += len(idx)
            new = {}
            for i, res in zip(idx, results):
                self.stats.prompt_tokens += res.prompt_tokens
                self.stats.completion_tokens += res.completion_tokens
                new[keys[i]] = asdict(res)
            self.cache.put_many("gen", self.backend.model_id, new)  # a killed run loses at most this batch
            done.update(new)
            bar.update(len(idx))
            bar.set_postfix(tok_s=f"{self.stats.completion_tokens / max(self.stats.seconds, 1e-9):.0f}")
        bar.close()
        return [GenResult(**done[k]) for k in keys]

    def score(self, requests: Sequence[ScoreRequest], batch_size: int, desc: str = "score") -> list[list[float]]:
        keys = [cache_key(kind="score", model=self.backend.model_id, prefix=r.prefix, text=r.text, options=r.options) for r in requests]
        done = self.cache.get_many(keys)
        todo = [i for i, k in enumerate(keys) if k not in done]
        self.stats.cache_hits += len(requests) - len(todo)
        # Sorting by length keeps padding (wasted compute) low; the cache key does not depend on order.
        todo.sort(key=lambda i: len(requests[i].text))
        bar = tqdm(total=len(todo), desc=desc, unit="example", disable=not self.progress or not todo)
        for start in range(0, len(todo), batch_size):
            idx = todo[start : start + batch_size]
            t0 = time.perf_counter()
            scores = self.backend.score([requests[i] for i in idx])
            self.stats.seconds += time.perf_counter() - t0
            self.stats.calls += len(idx)
            new = {keys[i]: s for i, s in zip(idx, scores)}
            self.cache.put_many("score", self.backend.model_id, new)
            done.update(new)
            bar.update(len(idx))
        bar.close()
        return [done[k] for k in keys]

"""Teachers: one interface (generate, score), its backends, and the LLM cache."""
from __future__ import annotations

from pathlib import Path

from distill.teachers.base import Budget, Decoding, GenRequest, GenResult, ScoreRequest, Teacher
from distill.teachers.cache import LLMCache

CACHE_PATH = Path(".cache") / "llm.sqlite"


def build_backend(params):
    """params: TeacherParams; `backend` picks the implementation. Tests replace this function to plug in a fake LLM."""
    if params.backend == "openai":
        from distill.teachers.openai_api import OpenAIBackend

        return OpenAIBackend(params)
    from distill.teachers.local import LocalBackend

    return LocalBackend(params.model)


def make_teacher(params, cache_path: str | Path = CACHE_PATH, progress: bool = True) -> Teacher:
    budget = Budget(params.max_calls, params.max_cost, params.price_per_1k_prompt, params.price_per_1k_completion)
    return Teacher(build_backend(params), LLMCache(cache_path), progress=progress, budget=budget)


__all__ = ["Budget", "Decoding", "GenRequest", "GenResult", "ScoreRequest", "Teacher", "LLMCache", "make_teacher", "build_backend"]

"""Teachers: one interface (generate, score), its backends, and the LLM cache."""

from __future__ import annotations

import os
from pathlib import Path

from distill.core.io import project_root
from distill.teachers.base import Budget, Decoding, GenRequest, GenResult, ScoreRequest, Teacher
from distill.teachers.cache import LLMCache


def cache_path() -> Path:
    """$DISTILL_LLM_CACHE, else `.cache/llm.sqlite` at the repository's real root: queued DVC experiments (run in
    temporary copies) share one cache with the workspace, so no answer is paid for twice."""
    return Path(os.environ.get("DISTILL_LLM_CACHE") or project_root() / ".cache" / "llm.sqlite")


def build_backend(params):
    """params: TeacherParams; `backend` picks the implementation. Tests replace this function to plug in a fake LLM."""
    if params.backend == "openai":
        from distill.teachers.openai_api import OpenAIBackend

        return OpenAIBackend(params)
    from distill.teachers.local import LocalBackend

    return LocalBackend(params.model, device=params.device, dtype=params.dtype)


def make_teacher(params, cache: str | Path | None = None, progress: bool = True) -> Teacher:
    budget = Budget(params.max_calls, params.max_cost, params.price_per_1k_prompt, params.price_per_1k_completion)
    return Teacher(build_backend(params), LLMCache(cache or cache_path()), progress=progress, budget=budget)


__all__ = [
    "Budget",
    "Decoding",
    "GenRequest",
    "GenResult",
    "ScoreRequest",
    "Teacher",
    "LLMCache",
    "make_teacher",
    "build_backend",
]

"""Teachers: one interface (generate, score), its backends, and the LLM cache."""
from __future__ import annotations

from pathlib import Path

from distill.teachers.base import Decoding, GenRequest, GenResult, ScoreRequest, Teacher
from distill.teachers.cache import LLMCache

CACHE_PATH = Path(".cache") / "llm.sqlite"


def build_backend(params):
    """params: TeacherParams. Tests replace this function to plug in a fake LLM."""
    from distill.teachers.local import LocalBackend

    return LocalBackend(params.model)


def make_teacher(params, cache_path: str | Path = CACHE_PATH, progress: bool = True) -> Teacher:
    return Teacher(build_backend(params), LLMCache(cache_path), progress=progress)


__all__ = ["Decoding", "GenRequest", "GenResult", "ScoreRequest", "Teacher", "LLMCache", "make_teacher", "build_backend"]

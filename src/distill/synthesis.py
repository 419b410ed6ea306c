"""Library glue shared by every method: the teacher as a few-shot classifier (classify) and as a solver of problems
(solutions, solve), one sample per generation request (sample), dedup keys and call accounting. Each task kind's
synthesis (samples cut, filtered and checked into rows) is kinds/synthesis.py's. Stages call these; methods/ keeps the
pure algorithms."""

from __future__ import annotations

from typing import Any

from distill.prompting.fewshot import (
    label_probs,
    pick_demos,
    score_requests,
    scoring_prefix,
    teacher_probs,
)
from distill.prompting.generation import dedup_key
from distill.core.tasks import TaskSpec
from distill.teachers import Decoding, GenRequest, Teacher


def classify(
    teacher: Teacher, spec: TaskSpec, rows: list[dict], fewshot: list[dict], tp, seed: int, desc: str = "score"
):
    """The teacher's label distribution for each row: (calibrated probs, raw probs), per tp.calibration."""
    prefix = scoring_prefix(spec, pick_demos(spec, fewshot, tp.shots_per_label, seed), tp.max_text_chars)
    scores = teacher.score(score_requests(spec, rows, prefix, tp.max_text_chars), tp.score_batch_size, desc=desc)
    return teacher_probs(scores, tp.calibration), [label_probs(s) for s in scores]


def sample(teacher: Teacher, requests: list[dict[str, Any]], decoding: Decoding, batch_size: int, desc: str) -> list:
    """One sample per request row (its chat messages, answer prefix and seed)."""
    return teacher.generate(
        [GenRequest(messages=tuple(map(tuple, r["messages"])), prefix=r["prefix"], seed=r["seed"]) for r in requests],
        decoding,
        batch_size,
        desc=desc,
    )


def decoding_of(g) -> Decoding:
    return Decoding(max_new_tokens=g.max_new_tokens, temperature=g.temperature, top_p=g.top_p, top_k=g.top_k)


def solutions(
    teacher: Teacher,
    spec: TaskSpec,
    rows: list[dict],
    fewshot: list[dict],
    tp,
    seed: int,
    votes: int = 1,
    temperature: float = 0.0,
    desc: str = "solve",
) -> list[list[str]]:
    """seq2seq tasks: the teacher's worked solutions of each row, few-shot (`shots_per_label` worked demos), as written
    (answer prefix included): one greedy solution, or `votes` samples at `temperature` (LLKD's self-consistency)."""
    import random

    from distill.prompting.seq2seq import solve_messages

    demos = random.Random(seed).sample(fewshot, min(max(tp.shots_per_label, 1), len(fewshot)))
    requests = []
    for r in rows:
        messages, prefix = solve_messages(spec, demos, r)
        requests += [GenRequest(messages=tuple(messages), prefix=prefix, seed=v) for v in range(votes)]
    decoding = Decoding(max_new_tokens=48, temperature=temperature, top_p=1.0)
    out = teacher.generate(requests, decoding, tp.batch_size, desc=desc)
    texts = [q.prefix + a.text for q, a in zip(requests, out)]
    return [texts[i : i + votes] for i in range(0, len(texts), votes)]


def solve(
    teacher: Teacher, spec: TaskSpec, rows: list[dict], fewshot: list[dict], tp, seed: int, desc: str = "solve"
) -> list[str]:
    """seq2seq tasks: the teacher's greedy answer to each row, read and checked like the student's (seq2seq.answer_of)."""
    from distill.prompting.seq2seq import answer_of

    return [answer_of(spec, texts[0]) for texts in solutions(teacher, spec, rows, fewshot, tp, seed, desc=desc)]


def seen_keys(spec: TaskSpec, rows: list[dict]) -> set[str]:
    """Dedup keys of rows already held, so new samples that repeat them are rejected as duplicates."""
    context = spec.fields[0].name if spec.kind == "pair" else None
    return {dedup_key(r[spec.fields[-1].name], r[context] if context else None) for r in rows}


def llm_metrics(teacher: Teacher) -> dict:
    """The teacher's call accounting as stage metrics (`llm.calls`, `llm.cache_hits`, ...)."""
    return {f"llm.{k}": v for k, v in teacher.stats.as_dict().items()}

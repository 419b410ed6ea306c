"""Library glue shared by every method: requests -> teacher samples -> cut, filtered, label-checked rows;
and the teacher as a few-shot classifier. Stages call these; methods/ keeps the pure algorithms."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from distill.prompting.fewshot import (
    label_probs,
    named_probs,
    pick_demos,
    score_requests,
    scoring_prefix,
    teacher_probs,
    top_label,
)
from distill.prompting.generation import dedup_key, filter_samples, normalise
from distill.tasks import TaskSpec
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


def synthesize(
    teacher: Teacher,
    spec: TaskSpec,
    params,
    requests: list[dict[str, Any]],
    fewshot: list[dict],
    source: str = "llm_gen",
    round_: int = 0,
    seen: set[str] | None = None,
    desc: str = "generate",
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Sample one text per request, cut and filter it, check its label with the teacher (generate.label_filter).

    Returns rows `{id, <fields>, label, source, round, meta}` and counts per rejection reason.
    `seen` holds normalised texts of earlier rounds, so later rounds don't repeat them.
    """
    g = params.generate
    decoding = decoding_of(g)
    answers = sample(teacher, requests, decoding, params.teacher.batch_size, desc)
    context_field = spec.fields[0].name if spec.kind == "pair" else None
    samples = []
    for r, a in zip(requests, answers):
        s = {"id": r["id"], "label": r["label"], "source": source, "round": round_, "demos": r.get("demos", [])}
        if context_field:
            s[context_field] = r["context"]
        s["meta"] = {
            "raw": a.text,
            "prompt_id": r["prompt_id"],
            "template_hash": r["template_hash"],
            "model": teacher.backend.model_id,
            "decoding": asdict(decoding),
            "finish": a.finish,
        }
        samples.append(s)
    kept, counts = filter_samples(
        samples,
        spec.fields[-1].name,
        g.min_words,
        g.max_words,
        context_field,
        seen,
        question=spec.fields[-1].form == "question",
    )
    counts = {f"rejected.{k}": v for k, v in counts.items()}
    counts["rejected.label_disagree"] = counts["relabelled"] = 0

    # The small teacher follows the requested label only ~70% of the time: check with its own classifier.
    if g.label_filter != "none" and kept:
        probs, _ = classify(teacher, spec, kept, fewshot, params.teacher, params.seed, desc="check labels")
        checked = []
        for s, p in zip(kept, probs):
            s["meta"]["teacher_probs"] = named_probs(spec, p)
            best = spec.label_names[top_label(p)]
            if best != s["label"]:
                if g.label_filter == "agree":
                    counts["rejected.label_disagree"] += 1
                    continue
                s["meta"]["requested_label"], s["label"] = s["label"], best
                counts["relabelled"] += 1
            checked.append(s)
        kept = checked
    rows = [
        {
            "id": s["id"],
            **{f: s[f] for f in spec.field_names},
            **{k: s[k] for k in ("label", "source", "round", "meta")},
        }
        for s in kept
    ]
    return rows, counts


def synthesize_examples(
    teacher: Teacher,
    spec: TaskSpec,
    params,
    requests: list[dict[str, Any]],
    source: str = "llm_gen",
    round_: int = 0,
    seen: set[str] | None = None,
    desc: str = "generate",
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """seq2seq tasks: sample one (input, [equation,] answer) example per request and keep those that parse and check
    (methods/seq2seq.parse_generated: the equation evaluates safely and the answer is its value), are questions where
    the task's inputs are, repeat no demo and no earlier example. Returns rows and counts per rejection reason."""
    from dataclasses import replace

    from distill.prompting.seq2seq import parse_generated

    g = params.generate
    decoding = decoding_of(g)
    if spec.max_new_tokens:  # a worked example is longer than a sentence: the task says how long
        decoding = replace(decoding, max_new_tokens=spec.max_new_tokens)
    answers = sample(teacher, requests, decoding, params.teacher.batch_size, desc)
    field = spec.fields[0]
    seen = set() if seen is None else seen
    counts: dict[str, int] = {}
    rows = []
    for r, a in zip(requests, answers):
        example, why = parse_generated(spec, a.text)
        if example is not None:
            words = len(example[field.name].split())
            key = dedup_key(example[field.name])  # as seen_keys makes them
            why = (
                "too_short"
                if words < g.min_words
                else "too_long"
                if words > g.max_words
                else "not_question"
                if field.form == "question" and "?" not in example[field.name]
                else "copies_demo"
                if key in {normalise(d) for d in r.get("demos", ())}
                else "duplicate"
                if key in seen
                else "ok"
            )
        if why != "ok":
            counts[f"rejected.{why}"] = counts.get(f"rejected.{why}", 0) + 1
            continue
        seen.add(key)
        rows.append(
            {
                "id": r["id"],
                **example,
                "source": source,
                "round": round_,
                "meta": {
                    "raw": a.text,
                    "prompt_id": r["prompt_id"],
                    "template_hash": r["template_hash"],
                    "model": teacher.backend.model_id,
                    "decoding": asdict(decoding),
                    "finish": a.finish,
                },
            }
        )
    return rows, counts


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

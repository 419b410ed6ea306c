"""Each task kind's synthesis, a function named like the kind: the teacher writes one sample per generation request
and the kind keeps those that pass its checks -> (rows, counts per rejection reason). Classification checks a
sample's label with the teacher's own few-shot classifier; a seq2seq example checks itself (its equation and answer).
In a module of its own, as evaluation.py: only the stages that generate data call the teacher, so the stages that
train do not depend on it."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from distill.kinds.base import TaskKind
from distill.prompting.fewshot import named_probs, top_label
from distill.prompting.generation import dedup_key, filter_samples, normalise
from distill.synthesis import classify, decoding_of, sample
from distill.core.tasks import TaskSpec
from distill.teachers import Teacher


def synthesize(
    kind: TaskKind,
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
    """The task kind's synthesis of `requests` (`fewshot`: the real rows a label check shows the teacher). `seen` holds
    the dedup keys of earlier rounds' rows (synthesis.seen_keys), so later rounds don't repeat them."""
    return globals()[kind.name](teacher, spec, params, requests, fewshot, source, round_, seen, desc)


def classification(
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


def seq2seq(
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
    """seq2seq tasks: sample one (input, [equation,] answer) example per request and keep those that parse and check
    (prompting/seq2seq.parse_generated: the equation evaluates safely and the answer is its value), are questions where
    the task's inputs are, repeat no demo and no earlier example. Returns rows and counts per rejection reason.
    `fewshot` is not read: an example checks itself, no classifier checks it."""
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

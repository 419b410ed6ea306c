"""ZeroGen (Ye et al. 2022): label-descriptive generation prompts and the rules that cut and filter
what the LLM writes (methods.md §4.3-4.4).

For single-text tasks each request is the label's prompt; for pair tasks the prompt is conditioned on a
real first text (a premise from unlabeled.jsonl) and the LLM writes the second text for the label.
"""

from __future__ import annotations

import random
import re
from typing import Any

from distill.core.io import sha256_text
from distill.core.tasks import TaskSpec

TEMPLATE_VERSION = "zerogen-chat-v1"  # bump when the wording below changes: it is part of every prompt hash


def generation_messages(
    spec: TaskSpec, label: str, context: str | None, demos: list[str], extra: str = ""
) -> list[tuple[str, str]]:
    """The chat prompt asking for one example of `label` (one user turn). `extra`: one more instruction."""
    target = spec.fields[-1]
    desc = next(l.description for l in spec.labels if l.name == label)
    parts = []
    if context is not None:
        first = spec.fields[0]
        parts.append(f'{first.display}: "{context}"')
    if demos:
        parts.append(f"Examples of {target.description}:\n" + "\n".join(f'{i}. "{d}"' for i, d in enumerate(demos, 1)))
    parts.append(
        f"Write {target.description}. {desc}{' ' + extra if extra else ''} Reply with the text only, in double quotes."
    )
    return [("user", "\n\n".join(parts))]


def template_hash(spec: TaskSpec, prefix: str) -> str:
    """Hash of everything in the template that is not per-request: wording version, task text, prefix."""
    return sha256_text(TEMPLATE_VERSION, spec.model_dump_json(), prefix)[:12]


def build_requests(
    spec: TaskSpec,
    n_per_label: int,
    fewshot: list[dict[str, Any]],
    contexts: list[str],
    demos_per_prompt: int,
    prefix: str,
    seed: int,
) -> list[dict[str, Any]]:
    """One row per sample to generate: n_per_label rows per label, each with a stable id and seed."""
    rng = random.Random(seed)
    thash = template_hash(spec, prefix)
    target = spec.fields[-1].name
    rows = []
    for label in spec.label_names:
        same = [r[target] for r in fewshot if r["label"] == label]
        for k in range(n_per_label):
            context = rng.choice(contexts) if spec.kind == "pair" else None
            demos = rng.sample(same, min(demos_per_prompt, len(same))) if demos_per_prompt else []
            rows.append(
                make_request(
                    thash,
                    f"{thash}-{label}-{k}",
                    label,
                    context,
                    generation_messages(spec, label, context, demos),
                    prefix,
                    seed,
                    demos,
                )
            )
    return rows


def make_request(
    thash: str, rid: str, label: str, context: str | None, messages, prefix: str, seed: int, demos: list[str] = ()
) -> dict[str, Any]:
    """One generation request row: stable id, prompt hash, a per-call seed independent of batching, and the
    examples the prompt shows (a sample that merely copies one of them is dropped)."""
    return {
        "id": rid,
        "prompt_id": sha256_text(thash, repr(messages))[:12],
        "template_hash": thash,
        "label": label,
        "context": context,
        "messages": messages,
        "prefix": prefix,
        "seed": int(sha256_text(str(seed), rid)[:8], 16),
        "demos": list(demos),
    }


_WS = re.compile(r"\s+")


def cut(raw: str) -> str | None:
    """ZeroGen's cut rule: up to the first closing quote; else the first newline; else the last full stop."""
    text = raw.lstrip().lstrip('"').lstrip()
    if '"' in text:
        text = text.split('"', 1)[0]
    elif "\n" in text:
        text = text.split("\n", 1)[0]
    elif "." in text:
        text = text[: text.rfind(".") + 1]
    else:
        return None
    text = _WS.sub(" ", text).strip()
    return text or None


def normalise(text: str) -> str:
    return re.sub(r"[^a-z0-9 ]", "", text.lower()).strip()


def dedup_key(text: str, context: str | None = None) -> str:
    return normalise(text) if context is None else normalise(context) + "|" + normalise(text)


def filter_samples(
    samples: list[dict[str, Any]],
    text_field: str,
    min_words: int,
    max_words: int,
    context_field: str | None = None,
    seen: set[str] | None = None,
    question: bool = False,
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Cut raw answers, then drop empty, too short/long, not a question (when the task's examples are questions),
    copies of a demonstration the prompt showed (`demos`), duplicates, and (pairs) copies of the context.

    Returns the kept samples (with `text_field` filled) and a count per rejection reason. `seen` (dedup keys
    of earlier rounds, see `dedup_key`) is updated in place.
    """
    rejected = {
        "no_text": 0,
        "too_short": 0,
        "too_long": 0,
        "not_question": 0,
        "copies_demo": 0,
        "duplicate": 0,
        "copies_context": 0,
    }
    seen = set() if seen is None else seen
    kept = []
    for s in samples:
        text = cut(s["meta"]["raw"])
        if text is None:
            rejected["no_text"] += 1
            continue
        words = len(text.split())
        if words < min_words:
            rejected["too_short"] += 1
            continue
        if words > max_words:
            rejected["too_long"] += 1
            continue
        if question and "?" not in text:
            rejected["not_question"] += 1
            continue
        if normalise(text) in {normalise(d) for d in s.get("demos", ())}:
            rejected["copies_demo"] += 1
            continue
        if context_field and normalise(text) == normalise(s[context_field]):
            rejected["copies_context"] += 1
            continue
        key = dedup_key(text, s[context_field] if context_field else None)
        if key in seen:
            rejected["duplicate"] += 1
            continue
        seen.add(key)
        kept.append({**s, text_field: text})
    return kept, rejected

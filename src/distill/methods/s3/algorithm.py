"""S3 (Wang et al. 2023, "Let's Synthesize Step by Step"): rationale-conditioned seed synthesis and error
extrapolation (methods.md §3). Pure prompt builders and parsers only.

- T_ration: the LLM lists reasons (aspects) that lead to each label; seed prompts sample k of them.
- T_mis: for each gold validation example the student gets wrong, the LLM writes one new, similar example
  with the gold label. The extrapolated text is new; the gold example itself never enters training.
- error_split: the part of validation.jsonl the rounds mine for errors; the rest stays unseen, so a run's `val_*`
  metrics (what experiments and @champion are chosen on) are not inflated by the rows its data was built from.
"""

from __future__ import annotations

import hashlib
import json
import random
import re

from distill.prompting.generation import generation_messages, make_request
from distill.core.tasks import TaskSpec

_NUMBERING = re.compile(r"^\s*(?:[-*•]|\d+[.)]|\(\d+\))\s*")


def error_split(rows: list[dict], fields: list[str], fraction: float) -> tuple[list[dict], list[dict]]:
    """validation rows -> (mined for errors, never seen by S3). A row's side is fixed by a hash of its input fields,
    not by the seed, its position or its id, so every run, seed and method agrees on which rows are held out (and
    copies of one text land on the same side)."""
    mined, held_out = [], []
    for r in rows:
        digest = hashlib.sha256(json.dumps([r[f] for f in fields], ensure_ascii=False).encode()).digest()
        (mined if int.from_bytes(digest[:8], "big") < fraction * 2**64 else held_out).append(r)
    return mined, held_out


def rationale_messages(spec: TaskSpec, label: str, n: int) -> list[tuple[str, str]]:
    target = spec.fields[-1]
    desc = next(l.description for l in spec.labels if l.name == label)
    return [
        (
            "user",
            f"Imagine {target.description} whose label is '{label}'. {desc} "
            f"List {n} different short reasons, aspects or topics that could lead to this label. One per line.",
        )
    ]


def parse_rationales(raw: str, limit: int) -> list[str]:
    """Numbered or bulleted lines -> distinct short reasons (2-20 words)."""
    out: list[str] = []
    for line in raw.splitlines():
        text = _NUMBERING.sub("", line).strip().strip('"').rstrip(".").strip()
        if 2 <= len(text.split()) <= 20 and text.lower() not in {o.lower() for o in out}:
            out.append(text)
    return out[:limit]


def seed_requests(
    spec: TaskSpec,
    n_per_label: int,
    rationales: dict[str, list[str]],
    k: int,
    contexts: list[str],
    prefix: str,
    seed: int,
    thash: str,
) -> list[dict]:
    """Seed synthesis: single texts condition on k sampled rationales; pairs on a real first text."""
    rng = random.Random(f"{seed}-s3-seed")
    rows = []
    for label in spec.label_names:
        for j in range(n_per_label):
            context = rng.choice(contexts) if spec.kind == "pair" else None
            pool = rationales.get(label, [])
            picked = rng.sample(pool, min(k, len(pool))) if spec.kind == "single" else []
            extra = f"It should be about: {'; '.join(picked)}." if picked else ""
            messages = generation_messages(spec, label, context, [], extra)
            rows.append(make_request(thash, f"{thash}-s3seed-{label}-{j}", label, context, messages, prefix, seed))
    return rows


def extrapolation_requests(
    spec: TaskSpec, errors: list[dict], round_: int, prefix: str, seed: int, thash: str
) -> list[dict]:
    """T_mis: one request per misclassified gold example, asking for a similar example with its gold label."""
    target = spec.fields[-1]
    rows = []
    for j, e in enumerate(errors):
        context = e[spec.fields[0].name] if spec.kind == "pair" else None
        desc = next(l.description for l in spec.labels if l.name == e["label"])
        parts = [f'{spec.fields[0].display}: "{context}"'] if context is not None else []
        parts.append(f"Here is {target.description} with the label '{e['label']}': \"{e[target.name]}\"")
        parts.append(
            f"Write another {target.description}, similar to it. {desc} Reply with the text only, in double quotes."
        )
        rows.append(
            make_request(
                thash, f"{thash}-s3r{round_}-{j}", e["label"], context, [("user", "\n\n".join(parts))], prefix, seed
            )
        )
    return rows

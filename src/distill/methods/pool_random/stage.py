"""Stage `pool_random`: the teacher labels `pool_random.size` random rows of unlabeled.jsonl (few-shot scoring, as
evaluate scores the teacher); every row is kept with the teacher's label distribution as its soft target."""

from __future__ import annotations

import random

from distill.core.io import DistillError, write_json, write_jsonl
from distill.kinds import kind_of
from distill.methods.pool_random.method import METHOD
from distill.prompting.fewshot import named_probs, top_label
from distill.stages import checked_task, inactive
from distill.synthesis import classify, llm_metrics
from distill.core.tasks import label_counts
from distill.teachers import make_teacher


def run(params, task_dir: str, out: str, metrics_out: str) -> None:
    task = checked_task(task_dir)
    if inactive(params, "pool_random"):
        write_jsonl(out, [])
        return write_json(metrics_out, {"skipped": 1})
    spec, kind = task.spec, kind_of(task.spec)
    if kind.name not in METHOD.kinds:
        raise DistillError(
            f"method pool_random: task {spec.name} is {kind.name}; "
            f"this baseline labels {' and '.join(METHOD.kinds)} tasks"
        )
    pool, fewshot = task.load("unlabeled"), task.load("fewshot")
    pool = random.Random(params.seed).sample(pool, min(params.pool_random.size, len(pool)))
    teacher = make_teacher(params.teacher)
    probs, _ = classify(teacher, spec, pool, fewshot, params.teacher, params.seed, desc="pool_random: label")
    rows = [
        {
            "id": f"pool-{r['_line']}",
            **{f: r[f] for f in spec.field_names},
            "label": spec.label_names[top_label(p)],
            "source": "pseudo",
            "round": 0,
            "meta": {"teacher_probs": named_probs(spec, p), "confidence": max(p)},
        }
        for r, p in zip(pool, probs)
    ]
    write_jsonl(out, rows)
    write_json(metrics_out, {"labelled": len(rows), **label_counts(spec, rows), **llm_metrics(teacher)})
    print(f"pool_random: the teacher labelled {len(rows)} random pool rows")

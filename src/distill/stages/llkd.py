"""Stage `llkd_label`: the teacher pseudo-labels the unlabelled pool (LLKD, methods.md §5).

For each row: p_T(y|x) for every label (few-shot plain prompt and label log-probs, the same scoring the
evaluate stage uses for the teacher baseline), the pseudo-label ŷ = argmax and the confidence c = max.
Cached and batched; selection happens later, online, inside training.
"""
from __future__ import annotations

import random

from distill.config import Params
from distill.io import write_json, write_jsonl
from distill.stages import checked_task, classification_only, inactive
from distill.synthesis import classify, llm_metrics
from distill.tasks import label_counts
from distill.teachers import make_teacher


def run(params: Params, task_dir: str, out: str, metrics_out: str) -> None:
    task = checked_task(task_dir)
    if inactive(params, "llkd"):
        write_jsonl(out, [])
        return write_json(metrics_out, {"skipped": 1})
    classification_only(task, "llkd")
    spec = task.spec
    pool, fewshot = task.load("unlabeled"), task.load("fewshot")  # validate inputs before any LLM call
    random.Random(params.seed).shuffle(pool)
    pool = pool[: params.llkd.pool_size] if params.llkd.pool_size else pool
    teacher = make_teacher(params.teacher)
    probs, _ = classify(teacher, spec, pool, fewshot, params.teacher, params.seed, desc="pseudo-label")
    rows = []
    for r, p in zip(pool, probs):
        y = max(range(len(p)), key=p.__getitem__)
        rows.append({"id": f"pool-{r['_line']}", **{f: r[f] for f in spec.field_names}, "label": spec.label_names[y],
                     "source": "pseudo", "round": 0,
                     "meta": {"teacher_probs": dict(zip(spec.label_names, [round(x, 5) for x in p])), "confidence": round(p[y], 5)}})
    write_jsonl(out, rows)
    conf = [r["meta"]["confidence"] for r in rows]
    metrics = {"pool": len(rows), "mean_confidence": sum(conf) / max(len(conf), 1), **label_counts(spec, rows),
               **llm_metrics(teacher)}
    write_json(metrics_out, metrics)
    print(f"llkd_label: pseudo-labelled {len(rows)} rows, mean confidence {metrics['mean_confidence']:.3f}")

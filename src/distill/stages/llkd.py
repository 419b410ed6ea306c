"""Stage `llkd_label`: the teacher pseudo-labels the unlabelled pool (LLKD, methods.md §5).

Classification: for each row p_T(y|x) for every label (few-shot plain prompt and label log-probs, the same scoring
the evaluate stage uses for the teacher baseline), the pseudo-label ŷ = argmax and the confidence c = max.
seq2seq: the teacher solves each problem `llkd.votes` times (few-shot, sampled); the pseudo-target is a solution
reaching the majority answer and c is that answer's share of the votes (self-consistency), since a generated
sequence has no single label probability. Problems no solution answers are dropped (counted).
Cached and batched; selection happens later, online, inside training.
"""
from __future__ import annotations

import random

from distill.config import Params
from distill.io import write_json, write_jsonl
from distill.stages import checked_task, inactive
from distill.synthesis import classify, llm_metrics, solutions
from distill.tasks import label_counts
from distill.teachers import make_teacher


def run(params: Params, task_dir: str, out: str, metrics_out: str) -> None:
    task = checked_task(task_dir)
    if inactive(params, "llkd"):
        write_jsonl(out, [])
        return write_json(metrics_out, {"skipped": 1})
    spec, lp = task.spec, params.llkd
    pool, fewshot = task.load("unlabeled"), task.load("fewshot")  # validate inputs before any LLM call
    random.Random(params.seed).shuffle(pool)
    pool = pool[: lp.pool_size] if lp.pool_size else pool
    teacher = make_teacher(params.teacher)
    rows, extra = (_solved if spec.seq2seq else _labelled)(params, spec, teacher, pool, fewshot)
    write_jsonl(out, rows)
    conf = [r["meta"]["confidence"] for r in rows]
    metrics = {"pool": len(pool), "pseudo_labelled": len(rows), "mean_confidence": sum(conf) / max(len(conf), 1),
               **extra, **llm_metrics(teacher)}
    write_json(metrics_out, metrics)
    print(f"llkd_label: pseudo-labelled {len(rows)} of {len(pool)} rows, mean confidence {metrics['mean_confidence']:.3f}")


def _labelled(params: Params, spec, teacher, pool: list[dict], fewshot: list[dict]) -> tuple[list[dict], dict]:
    probs, _ = classify(teacher, spec, pool, fewshot, params.teacher, params.seed, desc="pseudo-label")
    rows = []
    for r, p in zip(pool, probs):
        y = max(range(len(p)), key=p.__getitem__)
        rows.append({"id": f"pool-{r['_line']}", **{f: r[f] for f in spec.field_names}, "label": spec.label_names[y],
                     "source": "pseudo", "round": 0,
                     "meta": {"teacher_probs": dict(zip(spec.label_names, [round(x, 5) for x in p])), "confidence": round(p[y], 5)}})
    return rows, label_counts(spec, rows)


def _solved(params: Params, spec, teacher, pool: list[dict], fewshot: list[dict]) -> tuple[list[dict], dict]:
    from distill.methods.seq2seq import vote

    lp, field = params.llkd, spec.fields[0].name
    temperature = lp.temperature if lp.votes > 1 else 0.0  # one vote: the greedy solution
    written = solutions(teacher, spec, pool, fewshot, params.teacher, params.seed, lp.votes, temperature, desc="pseudo-solve")
    rows = []
    for r, texts in zip(pool, written):
        solution, confidence = vote(spec, texts)
        if solution is not None:
            rows.append({"id": f"pool-{r['_line']}", field: r[field], **solution, "source": "pseudo", "round": 0,
                         "meta": {"confidence": round(confidence, 5), "votes": len(texts)}})
    return rows, {"unanswered": len(pool) - len(rows)}

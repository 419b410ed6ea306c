"""Stage `llkd_label`: the teacher pseudo-labels the unlabelled pool (LLKD, methods.md §5).

Classification: for each row p_T(y|x) for every label (few-shot plain prompt and label log-probs, the same scoring
the evaluate stage uses for the teacher baseline), the pseudo-label ŷ = argmax and the confidence c = max.
seq2seq: the teacher solves each problem `llkd.votes` times (few-shot, sampled); the pseudo-target is a solution
reaching the majority answer and c is that answer's share of the votes (self-consistency), since a generated
sequence has no single label probability. Problems no solution answers are dropped (counted).
Classification also has a few-shot prior (`llkd.fewshot_prior: probe`, not in the paper): a linear probe fitted on
frozen embeddings (`llkd.prior_model`: all-mpnet-base-v2 by default, whatever the student) of the task's labelled
fewshot.jsonl gives its own p_P(y|x) on each pool row, and the pseudo-label distribution is the product p_T · p_P^w,
renormalised (methods/llkd/algorithm.with_prior). The 135M teacher and 8 real labels per class err on different rows: on
validation.jsonl (3 seeds) the product with mpnet's probe labels 0.855 of SST-2 right where the teacher alone gets
0.803 (MiniLM's probe: 0.812), and 0.840 of AG News (teacher 0.643) (docs/benchmarks.md). The teacher's own
distribution stays in `meta.llm_probs`.
Cached and batched; selection happens later, online, inside training.
"""

from __future__ import annotations

import random

import torch

from distill.config import Params
from distill.core.io import write_json, write_jsonl
from distill.kinds import kind_of
from distill.prompting.fewshot import named_probs, top_label
from distill.methods.llkd.algorithm import pool_cut
from distill.stages import checked_task, inactive
from distill.students.prior import fewshot_probe
from distill.synthesis import classify, llm_metrics, solutions
from distill.core.tasks import label_counts
from distill.teachers import make_teacher


def run(params: Params, task_dir: str, out: str, metrics_out: str) -> None:
    task = checked_task(task_dir)
    if inactive(params, "llkd"):
        write_jsonl(out, [])
        return write_json(metrics_out, {"skipped": 1})
    spec, lp = task.spec, params.llkd
    pool, fewshot = task.load("unlabeled"), task.load("fewshot")  # validate inputs before any LLM call
    random.Random(params.seed).shuffle(pool)
    # about the characters the teacher reads: each field capped at the length its prompt clips it to (clip() also
    # folds whitespace; not counted here, so the pools measured in docs/benchmarks.md stay the same)
    chars = [sum(min(len(str(r.get(f, ""))), params.teacher.max_text_chars) for f in spec.field_names) for r in pool]
    n = pool_cut(chars, lp.pool_size, lp.pool_chars)
    if n < min(len(pool), lp.pool_size or len(pool)):
        print(f"llkd_label: {n} pool rows (llkd.pool_chars={lp.pool_chars} characters reached before llkd.pool_size)")
    pool = pool[:n]
    teacher = make_teacher(params.teacher)
    rows, extra = PSEUDO_LABELS[kind_of(spec).name](params, spec, teacher, pool, fewshot)
    write_jsonl(out, rows)
    conf = [r["meta"]["confidence"] for r in rows]
    metrics = {
        "pool": len(pool),
        "pseudo_labelled": len(rows),
        "mean_confidence": sum(conf) / max(len(conf), 1),
        **extra,
        **llm_metrics(teacher),
    }
    write_json(metrics_out, metrics)
    print(
        f"llkd_label: pseudo-labelled {len(rows)} of {len(pool)} rows, mean confidence {metrics['mean_confidence']:.3f}"
    )


def _labelled(params: Params, spec, teacher, pool: list[dict], fewshot: list[dict]) -> tuple[list[dict], dict]:
    llm, _ = classify(teacher, spec, pool, fewshot, params.teacher, params.seed, desc="pseudo-label")
    probs, extra = llm, {}
    prior = fewshot_probe(params, spec, fewshot, pool)
    if prior is not None:
        from distill.methods.llkd.algorithm import with_prior

        probs = with_prior(torch.tensor(llm), prior, params.llkd.prior_weight).tolist()
        extra = {
            "prior_changed_labels": sum(top_label(p) != top_label(q) for p, q in zip(probs, llm)) / max(len(llm), 1)
        }
    rows = []
    for r, p, q in zip(pool, probs, llm):
        y = top_label(p)
        meta = {
            "teacher_probs": named_probs(spec, p),
            "confidence": round(p[y], 5),
            **({"llm_probs": named_probs(spec, q)} if prior is not None else {}),
        }
        rows.append(
            {
                "id": f"pool-{r['_line']}",
                **{f: r[f] for f in spec.field_names},
                "label": spec.label_names[y],
                "source": "pseudo",
                "round": 0,
                "meta": meta,
            }
        )
    return rows, {**label_counts(spec, rows), **extra}


def _solved(params: Params, spec, teacher, pool: list[dict], fewshot: list[dict]) -> tuple[list[dict], dict]:
    from distill.prompting.seq2seq import vote

    lp, field = params.llkd, spec.fields[0].name
    temperature = lp.temperature if lp.votes > 1 else 0.0  # one vote: the greedy solution
    written = solutions(
        teacher, spec, pool, fewshot, params.teacher, params.seed, lp.votes, temperature, desc="pseudo-solve"
    )
    rows = []
    for r, texts in zip(pool, written):
        solution, confidence = vote(spec, texts)
        if solution is not None:
            rows.append(
                {
                    "id": f"pool-{r['_line']}",
                    field: r[field],
                    **solution,
                    "source": "pseudo",
                    "round": 0,
                    "meta": {"confidence": round(confidence, 5), "votes": len(texts)},
                }
            )
    return rows, {"unanswered": len(pool) - len(rows)}


# each task kind's (kinds/) pseudo-labels of the pool: label distributions, or voted solutions
PSEUDO_LABELS = {"classification": _labelled, "seq2seq": _solved}

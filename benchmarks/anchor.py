"""A few-shot anchor for the teacher's labels? (issue 13; a scratch measurement on validation.jsonl, not a test)

SetFit trained on the task's fewshot.jsonl (the "anchor") co-labels LLKD's pool with the teacher: the geometric
mean of the two label distributions. A student (the default finetune recipe) is trained on the pool plus the
fewshot rows with the teacher's labels (`teacher`), the ensemble's (`ens`), or the ensemble's starting from the
SetFit model instead of a fresh encoder (`ens_from_setfit`, `teacher_from_setfit`). Validation accuracy only.

    DISTILL_LLM_CACHE=$PWD/.cache/llm.sqlite .venv/bin/python benchmarks/anchor.py sst2 teacher,ens,ens_from_setfit
"""

from __future__ import annotations

import argparse
import copy
import random
import sys
import time

import torch

from distill.config import load_params
from distill.core.io import DistillError
from distill.students import train_student
from distill.students.model import resolve_student
from distill.students.setfit_recipe import train_setfit
from distill.synthesis import classify
from distill.core.tasks import load_task
from distill.teachers import make_teacher


VARIANTS = ("teacher", "ens", "ens_from_setfit", "teacher_from_setfit")


def geometric_mean(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Normalised sqrt(p * q), row-wise: a product of two experts with equal say."""
    return torch.softmax(0.5 * p.clamp_min(1e-9).log() + 0.5 * q.clamp_min(1e-9).log(), -1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("task")
    ap.add_argument("variants", help=f"comma-separated: {', '.join(VARIANTS)}")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pool", type=int, default=1000)
    args = ap.parse_args()
    unknown = sorted(set(args.variants.split(",")) - set(VARIANTS))
    if unknown:
        ap.error(f"unknown variant(s) {', '.join(unknown)}: choose from {', '.join(VARIANTS)}")
    params = load_params("params.yaml")
    task = load_task(f"data/tasks/{args.task}")
    spec = task.spec
    val, few, pool = task.load("validation"), task.load("fewshot"), task.load("unlabeled")
    random.Random(args.seed).shuffle(pool)  # the pool LLKD's stage draws for this seed
    pool = pool[: args.pool]
    teacher = make_teacher(params.teacher)
    p_teacher = torch.tensor(classify(teacher, spec, pool, few, params.teacher, args.seed, desc="pool")[0])
    p_val = torch.tensor(classify(teacher, spec, val, few, params.teacher, args.seed, desc="validation")[0])
    t0 = time.time()
    anchor = train_setfit(
        few, spec.label_names, spec.field_names, resolve_student(params.train.model), params.train, args.seed, args.task
    )
    gold = torch.tensor([spec.label_id(r["label"]) for r in val])
    acc = lambda p: float((p.argmax(-1) == gold).float().mean())  # noqa: E731
    a_val = anchor.proba(val).float()
    print(
        f"{args.task} seed {args.seed}: validation accuracy teacher {acc(p_val):.3f}, SetFit anchor {acc(a_val):.3f}, "
        f"ensemble {acc(geometric_mean(p_val, a_val)):.3f} (SetFit {time.time() - t0:.0f} s)",
        flush=True,
    )
    p_ens = geometric_mean(p_teacher, anchor.proba(pool).float())
    fewshot = [dict(r, weight=1.0) for r in few]
    for v in args.variants.split(","):
        p = p_teacher if v.startswith("teacher") else p_ens
        rows = [
            {
                **{f: r[f] for f in spec.field_names},
                "label": spec.label_names[int(q.argmax())],
                "meta": {"teacher_probs": dict(zip(spec.label_names, q.tolist()))},
            }
            for r, q in zip(pool, p)
        ] + fewshot
        t0 = time.time()
        start = copy.deepcopy(anchor) if v.endswith("_from_setfit") else None
        student, _ = train_student(
            rows,
            spec.label_names,
            spec.field_names,
            params.train,
            args.seed,
            task=args.task,
            start=start,
            log=lambda s: None,
        )
        print(
            f"{args.task} seed {args.seed} {v}: student validation accuracy {student.accuracy(val):.3f} "
            f"({time.time() - t0:.0f} s)",
            flush=True,
        )


if __name__ == "__main__":
    try:
        main()
    except DistillError as e:  # a bad task folder or row: one line, as the CLI says it
        sys.exit(f"error: {e}")

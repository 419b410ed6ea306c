"""Can the default LLKD student beat its teacher on SST-2? Four attempts, on validation.jsonl (issue 13; a
measurement, not a test; minutes per run on 2 cores).

Every variant starts from the `llkd_label` stage's pseudo-labels (teacher x few-shot prior; the stage's own code, the
probe on MiniLM embeddings as when these were measured) plus the real fewshot rows, and trains the default student
(`train_student`, LLKD's online selection):
- `base`: as the pipeline did then;
- `crossfit`: a student trained on one half of the pool re-weighs the other half's labels (teacher x prior x that
  student, a product of experts: methods/llkd/algorithm.with_prior), then the final student trains on all of it;
- `demo2`: the teacher labels every row with two demonstration sets (seeds s and s + 1000) and the two calibrated
  distributions are averaged (prompt ensembling) before the prior;
- `epochs8`: twice the schedule, validation accuracy recorded after every epoch;
- `mpnetprior`: the few-shot prior's probe on all-mpnet-base-v2 embeddings instead of MiniLM's (`llkd.prior_model`;
  the default since this measurement); the student stays MiniLM.
Records without `group_by_length` batched at random (`--plain-batches`). Test accuracy is recorded, never used to
choose. Results: benchmarks/results/student_attempts.jsonl, each record with its provenance (provenance.py; no
MLflow run: the students train in this process, so `mlflow_run_id` is null).

    DISTILL_LLM_CACHE=$PWD/.cache/llm.sqlite .venv/bin/python benchmarks/student_attempts.py sst2 0 base,crossfit
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import torch

from distill.config import load_params
from distill.prompting.fewshot import top_label
from distill.methods.llkd.algorithm import with_prior
from distill.methods.registry import method_of
from distill.methods.llkd import stages as llkd_stage
from distill.stages.assemble import with_fewshot
from distill.kinds import kind_of
from distill.students import train_student
from distill.synthesis import classify
from distill.core.tasks import load_task
from distill.teachers import make_teacher

sys.path.insert(0, str(Path(__file__).resolve().parent))
from provenance import git_state, provenance  # noqa: E402

VARIANTS = ("base", "crossfit", "demo2", "epochs8", "mpnetprior")
RESULTS = Path(__file__).resolve().parent / "results" / "student_attempts.jsonl"


def demo_ensemble(k: int):
    """classify() averaged over k demonstration sets (seed, seed + 1000, ...); k = 1 is classify itself."""

    def run(teacher, spec, rows, fewshot, tp, seed, desc="score"):
        outs = [classify(teacher, spec, rows, fewshot, tp, seed + 1000 * j, desc=desc) for j in range(k)]
        return torch.tensor([o[0] for o in outs]).mean(0).tolist(), outs[0][1]

    return run


class EpochValidation:
    """LLKD's online selector as it is, plus the student's validation accuracy after every epoch (recorded only:
    no checkpoint is chosen on it, unlike train_student's select_rows)."""

    def __init__(self, inner, student, rows: list[dict]):
        self.inner, self.student, self.rows = inner, student, rows

    @property
    def needs_logits(self) -> bool:
        return self.inner.needs_logits

    def __call__(self, batch, logits):
        return self.inner(batch, logits)

    def epoch_stats(self) -> dict:
        return {**self.inner.epoch_stats(), "val_accuracy": self.student.accuracy(self.rows)}


def relabel(rows: list[dict], probs: torch.Tensor, labels: list[str]) -> list[dict]:
    """Rows with their label distribution replaced by `probs` (label, confidence and teacher_probs follow)."""
    out = []
    for r, p in zip(rows, probs.tolist()):
        y = top_label(p)
        out.append(
            {**r, "label": labels[y], "meta": {**r["meta"], "teacher_probs": dict(zip(labels, p)), "confidence": p[y]}}
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("task")
    ap.add_argument("seed", type=int)
    ap.add_argument("variants", help=f"comma-separated: {', '.join(VARIANTS)}")
    ap.add_argument("--dtype", default="bfloat16", help="teacher.dtype (float32 pairs with the float32 rows)")
    ap.add_argument("--pool", type=int, help="llkd.pool_size (default: params.yaml's)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--plain-batches", action="store_true", help="train.group_by_length: false (how runs before 2026-12-05 batched)"
    )
    ap.add_argument("--results", default=str(RESULTS))
    args = ap.parse_args()
    unknown = sorted(set(args.variants.split(",")) - set(VARIANTS))
    if unknown:
        ap.error(f"unknown variant {unknown[0]!r} (choose from {', '.join(VARIANTS)})")
    torch.set_num_threads(args.threads)
    repo = Path(__file__).resolve().parents[1]
    state = git_state(repo)  # the code as this process loaded it, not as it is when a variant ends
    params = load_params("params.yaml")
    params = params.model_copy(
        update={
            "task": args.task,
            "seed": args.seed,
            "method": "llkd",
            "teacher": params.teacher.model_copy(update={"dtype": args.dtype}),
            "llkd": params.llkd.model_copy(update={"pool_size": args.pool or params.llkd.pool_size}),
            "train": params.train.model_copy(update={"group_by_length": not args.plain_batches}),
        }
    )
    task = load_task(f"data/tasks/{args.task}", quiet=True)
    spec, labels = task.spec, task.spec.label_names
    pool, fewshot, val, test = task.load("unlabeled"), task.load("fewshot"), task.load("validation"), task.load("test")
    random.Random(args.seed).shuffle(pool)  # the llkd_label stage's pool
    pool = pool[: params.llkd.pool_size]
    teacher, real, method = make_teacher(params.teacher), with_fewshot(task, [], 1.0), method_of(params)

    def train(rows, epochs=None):
        rows, cfg, start = [dict(r) for r in rows], method.train_config(params), None
        selector = method.selector(params, rows, spec)
        if epochs:  # the same fresh student train_student would build, so that the selector can score it per epoch
            cfg = cfg.model_copy(update={"epochs": epochs})
            start = kind_of(spec).new_student(spec, cfg, args.seed)
            selector = EpochValidation(selector, start, val)
        return train_student(
            rows,
            labels,
            spec.field_names,
            cfg,
            args.seed,
            task=spec.name,
            start=start,
            selector=selector,
            log=lambda m: None,
        )

    for variant in args.variants.split(","):
        t0 = time.time()
        llkd_stage.classify = demo_ensemble(2 if variant == "demo2" else 1)  # the stage's teacher call
        prior = params.llkd.model_copy(update={"prior_model": "mpnet-base" if variant == "mpnetprior" else "minilm-l6"})
        rows, _ = llkd_stage._labelled(params.model_copy(update={"llkd": prior}), spec, teacher, pool, fewshot)
        extra = {}
        if variant == "crossfit":
            half = len(rows) // 2
            new = []
            for fit, held in ((rows[:half], rows[half:]), (rows[half:], rows[:half])):
                fold, _ = train(fit + real)
                now = torch.tensor([[r["meta"]["teacher_probs"][name] for name in labels] for r in held])
                new += relabel(held, with_prior(now, fold.proba(held), 1.0), labels)
                extra.setdefault("fold_val", []).append(fold.accuracy(val))
            extra["changed_labels"] = sum(
                a["label"] != b["label"] for a, b in zip(rows[half:] + rows[:half], new)
            ) / len(new)
            rows = new
        student, history = train(rows + real, 8 if variant == "epochs8" else None)
        if variant == "epochs8":
            extra["val_per_epoch"] = [h["val_accuracy"] for h in history]
        record = {
            "task": args.task,
            "seed": args.seed,
            "variant": variant,
            "dtype": args.dtype,
            "pool": len(pool),
            "group_by_length": params.train.group_by_length,
            "val": student.accuracy(val),
            "test": student.accuracy(test),
            "seconds": round(time.time() - t0),
            **extra,
        }
        over = {
            "task": args.task,
            "seed": args.seed,
            "method": "llkd",
            "teacher.dtype": args.dtype,
            "llkd.pool_size": params.llkd.pool_size,
            "train.group_by_length": params.train.group_by_length,
            "llkd.prior_model": prior.prior_model,
        }
        resolved = params.model_copy(update={"llkd": prior}).model_dump(mode="json")
        record.update(provenance(repo, resolved, over, args.threads, None, state))
        print(json.dumps(record), flush=True)
        with open(args.results, "a") as f:
            f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()

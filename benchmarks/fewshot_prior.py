"""How good are LLKD's pseudo-labels, with and without the few-shot prior (`llkd.fewshot_prior`)? Validation only.

For each task and seed: the teacher's calibrated few-shot label distribution on validation.jsonl (the scoring the
llkd_label stage applies to the pool, same prompts and seed), the probe fitted on fewshot.jsonl (students/prior.py:
fewshot_probe), and their product (methods/llkd/algorithm.with_prior) over a grid of `prior_model` x `prior_c` x `prior_weight`. The accuracy of
each labeller on validation is what `llkd.prior_c` / `llkd.prior_weight` were chosen on; test.jsonl is never read.
The teacher's answers come from the LLM cache when a run already asked them. Results replace the `fewshot_prior`
block of docs/benchmarks.md.

    .venv/bin/python benchmarks/fewshot_prior.py --tasks sst2 ag_news --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline import REPO, replace_block  # noqa: E402

GRID_C = [1.0, 3.0, 10.0]
GRID_W = [1.0, 1.5, 2.0]
MODELS = ["minilm-l6", "mpnet-base"]  # llkd.prior_model: the probe's encoder


def accuracy(probs: torch.Tensor, gold: torch.Tensor) -> float:
    return float((probs.argmax(-1) == gold).float().mean())


def measure(task_name: str, seed: int) -> dict[str, float]:
    from distill.config import load_params
    from distill.methods.llkd.algorithm import with_prior
    from distill.students.prior import fewshot_probe
    from distill.synthesis import classify
    from distill.core.tasks import load_task
    from distill.teachers import make_teacher

    params = load_params(REPO / "params.yaml").model_copy(update={"task": task_name, "seed": seed})
    task = load_task(REPO / "data" / "tasks" / task_name, quiet=True)
    spec, validation, fewshot = task.spec, task.load("validation"), task.load("fewshot")
    gold = torch.tensor([spec.label_id(r["label"]) for r in validation])
    teacher, _ = classify(
        make_teacher(params.teacher), spec, validation, fewshot, params.teacher, seed, desc=f"{task_name} seed {seed}"
    )
    teacher = torch.tensor(teacher)
    out = {"teacher": accuracy(teacher, gold)}
    for model in MODELS:
        for c in GRID_C:
            lp = params.llkd.model_copy(update={"fewshot_prior": "probe", "prior_c": c, "prior_model": model})
            probe = fewshot_probe(params.model_copy(update={"llkd": lp}), spec, fewshot, validation)
            out[f"probe {model} C={c:g}"] = accuracy(probe, gold)
            for w in GRID_W:
                out[f"product {model} C={c:g} w={w:g}"] = accuracy(with_prior(teacher, probe, w), gold)
    return out


def render(results: dict[str, dict[int, dict[str, float]]], defaults: tuple[str, float, float]) -> str:
    tasks = list(results)
    keys = list(next(iter(results[tasks[0]].values())))
    default = f"product {defaults[0]} C={defaults[1]:g} w={defaults[2]:g}"
    head = f"| labeller | {' | '.join(f'{t} val acc' for t in tasks)} | mean |\n|---|{'---|' * (len(tasks) + 1)}\n"
    lines = []
    for k in keys:
        means = [statistics.mean(r[k] for r in results[t].values()) for t in tasks]
        cells = [
            f"{statistics.mean(r[k] for r in results[t].values()):.3f} ({', '.join(f'{r[k]:.3f}' for r in results[t].values())})"
            for t in tasks
        ]
        name = f"**{k} (default)**" if k == default else k
        lines.append(f"| {name} | {' | '.join(cells)} | {statistics.mean(means):.3f} |")
    seeds = sorted({s for t in tasks for s in results[t]})
    return (
        f"Measured {time.strftime('%Y-%m-%d')}: accuracy on validation.jsonl (200 rows) of each way to label it, mean "
        f"(seeds {', '.join(map(str, seeds))}); teacher = the embedded teacher's calibrated few-shot labels "
        "(params.yaml's teacher), probe = logistic regression on frozen embeddings of fewshot.jsonl (the encoder: "
        "llkd.prior_model; C = scikit-learn's), product = teacher x probe^w. Reproduce: `.venv/bin/python benchmarks/fewshot_prior.py`.\n\n"
        + head
        + "\n".join(lines)
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", nargs="+", default=["sst2", "ag_news"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--out", default=str(REPO / "docs" / "benchmarks.md"))
    args = ap.parse_args()
    from distill.config import Params

    results = {t: {s: measure(t, s) for s in args.seeds} for t in args.tasks}
    p = Params()
    defaults = (
        p.train.model if p.llkd.prior_model == "student" else p.llkd.prior_model,
        p.llkd.prior_c,
        p.llkd.prior_weight,
    )
    table = render(results, defaults)
    print(table)
    replace_block(Path(args.out), "fewshot_prior", table)


if __name__ == "__main__":
    main()

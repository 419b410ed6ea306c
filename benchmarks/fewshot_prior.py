"""How good are LLKD's pseudo-labels, with and without the few-shot prior (`llkd.fewshot_prior`)? Validation only.

For each task and seed: the teacher's calibrated few-shot label distribution on validation.jsonl (the scoring the
llkd_label stage applies to the pool, same prompts and seed), the probe fitted on fewshot.jsonl (students/prior.py:
fewshot_probe), and their product (methods/llkd/algorithm.with_prior) over a grid of `prior_model` x `prior_c` x `prior_weight`;
with --setfit also SetFit on mpnet as the prior (`llkd.fewshot_prior: setfit`) and its products. The accuracy of
each labeller on validation is what `llkd.prior_c` / `llkd.prior_weight` were chosen on; test.jsonl is never read.
The teacher's answers come from the LLM cache when a run already asked them. Each (task, seed) appends a row with its
provenance to benchmarks/results/fewshot_prior.jsonl; the `fewshot_prior_rows` block of docs/benchmarks.md is
rendered from those rows (the newest row per task and seed). The older `fewshot_prior` block (SST-2 and AG News,
2026-12-05) was written before rows were kept.

    .venv/bin/python benchmarks/fewshot_prior.py --tasks sst2 ag_news cr mpqa --seeds 0 1 2 --setfit
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline import REPO, replace_block  # noqa: E402
from provenance import checked, git_state, provenance  # noqa: E402
from runner import load_results  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "fewshot_prior.jsonl"

GRID_C = [1.0, 3.0, 10.0]
GRID_W = [1.0, 1.5, 2.0]
GRID_W_SETFIT = [1.0, 1.5, 2.0, 3.0, 4.0]  # SetFit is the stronger prior: how far up does the product keep gaining?
MODELS = ["minilm-l6", "mpnet-base"]  # llkd.prior_model: the probe's encoder


def accuracy(probs: torch.Tensor, gold: torch.Tensor) -> float:
    return float((probs.argmax(-1) == gold).float().mean())


def measure(task_name: str, seed: int, setfit: bool = False) -> dict[str, float]:
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
    if setfit:  # SetFit's own head (scikit-learn's default C = 1): no C grid
        lp = params.llkd.model_copy(update={"fewshot_prior": "setfit", "prior_model": "mpnet-base"})
        t0 = time.perf_counter()
        prior = fewshot_probe(params.model_copy(update={"llkd": lp}), spec, fewshot, validation)
        out["setfit seconds"] = round(time.perf_counter() - t0, 1)
        out["setfit mpnet-base"] = accuracy(prior, gold)
        for w in GRID_W_SETFIT:
            out[f"product setfit mpnet-base w={w:g}"] = accuracy(with_prior(teacher, prior, w), gold)
    return out


def by_task_seed(rows: list[dict]) -> dict[str, dict[int, dict[str, float]]]:
    """The newest row's accuracies per task and seed."""
    results: dict[str, dict[int, dict[str, float]]] = {}
    for r in checked(rows, RESULTS.relative_to(REPO)):
        results.setdefault(r["task"], {})[r["seed"]] = r["accuracy"]
    return results


def render_rows(rows: list[dict]) -> str:
    """The `fewshot_prior_rows` block from the results rows (a row without provenance is refused), the default's
    labeller in bold."""
    from distill.config import Params

    p = Params()
    model = p.train.model if p.llkd.prior_model == "student" else p.llkd.prior_model
    return render(by_task_seed(rows), (model, p.llkd.prior_c, p.llkd.prior_weight))


def render(results: dict[str, dict[int, dict[str, float]]], defaults: tuple[str, float, float]) -> str:
    tasks = list(results)
    keys = [k for k in dict.fromkeys(k for t in tasks for r in results[t].values() for k in r) if "seconds" not in k]
    keys = [k for k in keys if all(k in r for t in tasks for r in results[t].values())]  # measured everywhere
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
    seeds = "; ".join(f"{t}: {', '.join(map(str, sorted(results[t])))}" for t in tasks)
    return (
        f"Accuracy on validation.jsonl (200 rows) of each way to label it: the mean over a task's seeds, then each "
        f"seed's in parentheses (seeds {seeds}); teacher = the embedded teacher's calibrated few-shot labels "
        "(params.yaml's teacher), probe = logistic regression on frozen embeddings of fewshot.jsonl (the encoder: "
        "llkd.prior_model; C = scikit-learn's), setfit = SetFit on fewshot.jsonl (mpnet, train.setfit_* settings), "
        "product = teacher x prior^w. Raw rows, with their commit and machine: "
        "`benchmarks/results/fewshot_prior.jsonl`. Reproduce: "
        "`.venv/bin/python benchmarks/fewshot_prior.py --tasks sst2 ag_news cr mpqa --setfit`.\n\n"
        + head
        + "\n".join(lines)
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", nargs="+", default=["sst2", "ag_news"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument(
        "--setfit", action="store_true", help="also SetFit on mpnet as the prior (minutes per task and seed)"
    )
    ap.add_argument("--results", default=str(RESULTS))
    ap.add_argument("--out", default=str(REPO / "docs" / "benchmarks.md"))
    ap.add_argument("--render-only", action="store_true", help="re-render the block from the rows, measure nothing")
    args = ap.parse_args()
    from distill.config import load_params

    state = git_state(REPO)  # the code measured: taken before the first measurement
    shipped = load_params(REPO / "params.yaml")
    for t in [] if args.render_only else args.tasks:
        for s in args.seeds:
            accuracies = measure(t, s, args.setfit)
            params = shipped.model_copy(update={"task": t, "seed": s}).model_dump(mode="json")
            row = {"task": t, "seed": s, "accuracy": accuracies}
            row.update(provenance(REPO, params, {"task": t, "seed": s}, torch.get_num_threads(), None, state))
            with open(args.results, "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
    table = render_rows(load_results(Path(args.results)))
    print(table)
    replace_block(Path(args.out), "fewshot_prior_rows", table)


if __name__ == "__main__":
    main()

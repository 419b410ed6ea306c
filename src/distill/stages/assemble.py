"""Stage `assemble`: the final training set of the selected method, plus its per-iteration curve.

zerogen: the generate stage's samples. gold: all iterations' data (optionally without the highest-energy
fraction). s3: seed data plus every round's extrapolations. llkd: the whole pseudo-labelled pool
(selection happens online in training). labelled: real labelled rows only — the reference a user compares
against ("does distillation beat labelling 200 examples myself?"). Writes `plots/iterations.tsv` (one row per iteration: validation accuracy, mean energy, size)
so that `dvc plots show` draws the curve.
"""
from __future__ import annotations

from pathlib import Path

from distill.config import Params
from distill.io import atomic_path, read_json, read_jsonl, write_json, write_jsonl
from distill.methods.gold import energy
from distill.students.classifier import load_student, predict_logits
from distill.synthesis import label_counts
from distill.tasks import check_labels, load_task

CURVE = ["iteration", "val_accuracy", "energy_mean", "energy_std", "generated", "total"]


def run(params: Params, task_dir: str, generated: str, gold_dir: str, out: str, metrics_out: str, plot_out: str,
        pseudo: str | None = None, s3_dir: str | None = None) -> None:
    task = load_task(task_dir)
    spec = task.spec
    curve: list[dict] = []
    dropped = 0
    if params.method in ("gold", "s3"):  # iterative: the last step holds all data so far; every step a curve point
        root, name, steps = ((Path(gold_dir), "iter", params.gold.iterations) if params.method == "gold"
                             else (Path(s3_dir), "round", params.s3.rounds))
        last = root / f"{name}_{steps[-1].i if steps else 0}"
        rows = read_jsonl(last / "data.jsonl")
        curve = [{"iteration": st.i, **read_json(root / f"{name}_{st.i}" / "metrics.json")} for st in steps]
        g = params.gold
        if params.method == "gold" and g.drop_top_energy > 0 and rows and (last / "student").is_dir():
            rows, dropped = drop_high_energy(rows, last / "student", spec.field_names, g.drop_top_energy, g.energy_T)
    elif params.method == "labelled":  # the human-label reference: no teacher at all
        rows = [{**r, "source": "gold", "round": 0} for split in params.labelled.splits for r in task.load(split)]
    elif params.method == "llkd":
        rows = read_jsonl(pseudo)  # every pseudo-label: LLKD selects online, during training
    else:
        rows = read_jsonl(generated)
    check_labels(rows, spec, {"zerogen": generated, "gold": gold_dir, "s3": s3_dir, "llkd": pseudo, "labelled": task.root}[params.method])
    write_jsonl(out, rows)
    write_json(metrics_out, {"n_samples": len(rows), "iterations": len(curve), "dropped_high_energy": dropped,
                             **label_counts(spec, rows)})
    with atomic_path(plot_out) as tmp:
        lines = ["\t".join(CURVE)] + ["\t".join(str(c.get(k, "")) for k in CURVE) for c in curve]
        tmp.write_text("\n".join(lines) + "\n")
    print(f"assemble: {len(rows)} training samples for method {params.method} ({len(curve)} iterations, {dropped} dropped)")


def drop_high_energy(rows: list[dict], student: Path, fields: list[str], fraction: float, T: float) -> tuple[list[dict], int]:
    """Optional noise filter: remove the `fraction` of samples the last student finds most out-of-distribution."""
    model, tok = load_student(student)
    e = energy(predict_logits(model, tok, rows, fields), T).tolist()
    n_drop = int(len(rows) * fraction)
    drop = set(sorted(range(len(rows)), key=lambda i: e[i], reverse=True)[:n_drop])
    return [r for i, r in enumerate(rows) if i not in drop], n_drop

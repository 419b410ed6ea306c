"""Stage `assemble`: the selected method's final training set, plus its per-iteration curve.

Where the rows come from is the method's business (its methods/<name>/method.py): ZeroGen's generated samples, all of
GOLD's iterations, S3's seed data plus every round's extrapolations, LLKD's pseudo-labelled pool (selected
online in training), or real labelled rows only (`labelled`, the reference a user compares against). Writes
`plots/iterations.tsv` (one row per iteration: validation accuracy, mean energy, size) for `dvc plots show`.

Every method's final set passes through here, so this is where a row that repeats a test.jsonl row (a teacher that
wrote a test example out, a pseudo-labelled pool row that is also a test row, a fewshot row the test split shares)
is dropped: training on the test set would make the reported accuracy meaningless.
"""

from __future__ import annotations

from pathlib import Path

from distill.config import Params
from distill.core.io import DistillError, atomic_path, write_json, write_jsonl
from distill.kinds import kind_of
from distill.core.leakage import drop_test_rows
from distill.methods.registry import method_of
from distill.core.tasks import check_labels, label_counts, load_task

CURVE = ["iteration", "val_accuracy", "energy_mean", "energy_std", "generated", "total"]


def run(params: Params, task_dir: str, inputs: dict[str, str], out: str, metrics_out: str, plot_out: str) -> None:
    """inputs: method name -> its stages' output, as dvc.yaml passes them (`--input gold=data/work/gold`)."""
    task = load_task(task_dir)
    spec = task.spec
    method = method_of(params)
    if method.reads_output and params.method not in inputs:
        raise DistillError(f"assemble: no --input {params.method}=PATH (the output of method {params.method}'s stages)")
    data = method.training_set(params, task, Path(inputs[params.method]) if params.method in inputs else None)
    check_labels(data.rows, spec, data.source)
    test = task.load("test")
    method_rows, leaked = drop_test_rows(spec, data.rows, test)
    real, leaked_real = drop_test_rows(spec, with_fewshot(task, method_rows, params.assemble.fewshot_weight), test)
    leaked += leaked_real
    rows = method_rows + real
    write_jsonl(out, rows)
    write_json(
        metrics_out,
        {
            "n_samples": len(rows),
            "n_fewshot": len(real),
            "iterations": len(data.curve),
            "dropped_high_energy": data.dropped,
            "dropped_test_overlap": leaked,
            **label_counts(spec, rows),
        },
    )
    with atomic_path(plot_out) as tmp:
        lines = ["\t".join(CURVE)] + ["\t".join(str(c.get(k, "")) for k in CURVE) for c in data.curve]
        tmp.write_text("\n".join(lines) + "\n")
    print(
        f"assemble: {len(rows)} training samples for method {params.method} "
        f"({len(real)} real fewshot rows, {len(data.curve)} iterations, {data.dropped} dropped as high-energy, "
        f"{leaked} as copies of test rows)"
    )


def with_fewshot(task, rows: list[dict], weight: float) -> list[dict]:
    """The real fewshot rows not already in `rows` (the `labelled` method has them), weighted, with one-hot
    teacher_probs and full confidence, so soft-target training and LLKD's selector treat them as certain labels."""
    if weight <= 0:
        return []
    fields, kind = task.spec.field_names, kind_of(task.spec)
    seen = {tuple(r[f] for f in fields) for r in rows}
    return [
        kind.fewshot_row(task.spec, r, weight) for r in task.load("fewshot") if tuple(r[f] for f in fields) not in seen
    ]

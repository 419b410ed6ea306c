"""Stage `train`: train the student on the method's training set (train.recipe) and save it.

The recipe is the same for every method; a method may add a loss (GOLD's SCE), an online selector (LLKD) or
its own training settings (GOLD's final epochs), through its registry entry (methods/registry.py).
"""

from __future__ import annotations

import time

from distill.config import Params
from distill.core.io import atomic_dir, read_jsonl, write_json
from distill.methods.registry import method_of
from distill.kinds import kind_of
from distill.resolved import train_config
from distill.students import distributed
from distill.students.prior import start_encoder
from distill.core.tasks import check_labels, load_task


def run(
    params: Params, task_dir: str, data_path: str, model_out: str, metrics_out: str, history_out: str | None = None
) -> None:
    task = load_task(task_dir)
    spec, method = task.spec, method_of(params)
    cfg = train_config(params, spec)  # the method's and the task kind's settings (resolved.py)
    cfg = start_encoder(cfg, params.seed, spec, task.load("fewshot"))  # train.init: setfit -> SetFit's encoder
    rows = read_jsonl(data_path, required=spec.field_names)
    check_labels(rows, spec, data_path)
    select = task.load("validation") if cfg.select_on_validation else []
    t0 = time.perf_counter()
    student, history = kind_of(spec).train(
        spec,
        rows,
        cfg,
        params.seed,
        loss_fn=method.loss(params),
        selector=method.selector(params, rows, spec),
        select_rows=select,
    )
    if not distributed.is_main():  # under `accelerate launch` with N processes: rank 0 writes
        return
    with atomic_dir(model_out) as tmp:
        student.save_pretrained(tmp)
    last = {
        k: v for k, v in (history[-1] if history else {}).items() if k.startswith(("selected_", "distinct_", "tau_"))
    }
    write_json(
        metrics_out,
        {
            "n_train": len(rows),
            "epochs_run": len(history),
            "processes": distributed.world()[1],
            **({"select_accuracy": max(h["select_accuracy"] for h in history)} if select and history else {}),
            "train_seconds": round(time.perf_counter() - t0, 2),
            **last,
        },
    )
    if history_out:  # per-epoch curve: loss, selection fractions and thresholds (LLKD)
        write_json(history_out, history or [{"epoch": 0, "train_loss": 0.0}])

"""Stage `train`: fine-tune the student on the generated data and save it with its tokenizer."""
from __future__ import annotations

import functools
import json
import random
import time

from distill.config import Params
from distill.io import atomic_dir, read_jsonl, write_json
from distill.methods.gold import sce_loss
from distill.methods.llkd import Selector
from distill.students.classifier import cross_entropy, load_student, resolve_student, train_classifier
from distill.tasks import check_labels, load_task


def split_holdout(rows: list[dict], fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """Deterministic split; no hold-out when there is too little data to make one meaningful."""
    rows = rows[:]
    random.Random(seed).shuffle(rows)
    n = int(round(fraction * len(rows))) if len(rows) >= 20 else 0
    return rows[n:], rows[:n]


def loss_for(params: Params):
    """GOLD trains its final student with the noise-robust symmetric cross-entropy; the rest use (weighted) CE."""
    g = params.gold
    if params.method == "gold" and g.loss == "sce":
        return functools.partial(sce_loss, alpha=g.sce_alpha, beta=g.sce_beta, clamp=g.sce_clamp)
    return cross_entropy


def run(params: Params, task_dir: str, data_path: str, model_out: str, metrics_out: str, history_out: str | None = None) -> None:
    task = load_task(task_dir)
    spec, cfg = task.spec, params.train
    if params.method == "gold" and params.gold.final_epochs:  # the code's fixed final schedule (§2.11): no early stop
        cfg = cfg.model_copy(update={"epochs": params.gold.final_epochs, "patience": params.gold.final_epochs})
    if params.method == "gold" and params.gold.final_lr:
        cfg = cfg.model_copy(update={"lr": params.gold.final_lr})
    rows = read_jsonl(data_path, required=spec.field_names)
    check_labels(rows, spec, data_path)
    train_rows, holdout = split_holdout(rows, cfg.holdout, params.seed)
    select = task.load("validation") if cfg.select_on_validation else holdout
    model, tok = load_student(resolve_student(cfg.model), spec.label_names, params.seed)
    t0 = time.perf_counter()
    selector = None
    if params.method == "llkd":  # online selection: teacher confident AND student uncertain
        for r in train_rows:
            r["yhat"], r["confidence"] = spec.label_id(r["label"]), r["meta"]["confidence"]
        lp = params.llkd
        selector = Selector(train_rows, len(spec.labels), lp.selection, lp.momentum, lp.weighting, lp.fraction, params.seed)
    model, history = train_classifier(model, tok, train_rows, select, spec.field_names, spec.label_names, cfg, params.seed,
                                      loss_fn=loss_for(params), selector=selector)
    with atomic_dir(model_out) as tmp:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        (tmp / "distill.json").write_text(json.dumps({"task": spec.name, "fields": spec.field_names, "labels": spec.label_names}))
    best = max((h.get("select_accuracy", 0.0) for h in history), default=0.0)
    last = {k: v for k, v in history[-1].items() if k.startswith(("selected_", "distinct_", "tau_"))}
    write_json(metrics_out, {"n_train": len(train_rows), "n_select": len(select), "epochs_run": len(history),
                             "select_accuracy": best, "train_seconds": round(time.perf_counter() - t0, 2), **last})
    if history_out:  # per-epoch curve: loss, selection fractions and thresholds (LLKD)
        write_json(history_out, history)

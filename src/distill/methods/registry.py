"""One interface per method, so the shared stages (assemble, train) hold no method names.

A method is: where its training set comes from (its own stages' outputs, read by `assemble`), and its hooks into
the shared training (a loss, an online selector, schedule overrides). Adding a method = its own stages and
params section, plus one entry here.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from distill.io import read_json, read_jsonl


@dataclass(frozen=True)
class Inputs:
    """The outputs of every method's own stages, as dvc.yaml passes them to `assemble`."""
    generated: Path
    gold_dir: Path
    s3_dir: Path
    pseudo: Path


@dataclass(frozen=True)
class TrainingSet:
    rows: list[dict[str, Any]]
    source: Path  # named in errors about these rows
    curve: list[dict[str, Any]]  # one point per iteration / round (iterative methods)
    dropped: int = 0


def _no_hook(params, *args):
    return None


@dataclass(frozen=True)
class Method:
    name: str
    training_set: Callable[[Any, Any, Inputs], TrainingSet]  # (params, task, inputs)
    loss: Callable[[Any], Any] = _no_hook  # (params) -> loss_fn(logits, targets, weights) | None (soft CE)
    selector: Callable[[Any, list[dict], Any], Any] = _no_hook  # (params, rows, spec) -> per-batch selector | None
    train_config: Callable[[Any], Any] = lambda params: params.train  # (params) -> the TrainParams its student uses


def _steps(params, task, root: Path, name: str, steps) -> tuple[Path, list[dict], list[dict]]:
    """Iterative methods: the last step's folder holds all data so far; every step is a curve point."""
    last = root / f"{name}_{steps[-1].i if steps else 0}"
    curve = [{"iteration": st.i, **read_json(root / f"{name}_{st.i}" / "metrics.json")} for st in steps]
    return last, read_jsonl(last / "data.jsonl"), curve


def _zerogen(params, task, inp: Inputs) -> TrainingSet:
    return TrainingSet(read_jsonl(inp.generated), inp.generated, [])


def _gold(params, task, inp: Inputs) -> TrainingSet:
    g = params.gold
    last, rows, curve = _steps(params, task, inp.gold_dir, "iter", g.iterations)
    dropped = 0
    if g.drop_top_energy > 0 and rows and (last / "student").is_dir():
        from distill.methods.gold import drop_high_energy
        from distill.students.model import load_student

        energies = load_student(last / "student").energies(rows, g.energy_T)
        rows, dropped = drop_high_energy(rows, energies, g.drop_top_energy)
    return TrainingSet(rows, inp.gold_dir, curve, dropped)


def _gold_loss(params):
    g = params.gold
    if g.loss != "sce":
        return None
    from distill.methods.gold import sce_loss

    return functools.partial(sce_loss, alpha=g.sce_alpha, beta=g.sce_beta, clamp=g.sce_clamp)


def _gold_train(params):
    """The released code's final schedule (§2.11), where set: its own epochs and learning rate."""
    g = params.gold
    return params.train.model_copy(update={k: v for k, v in (("epochs", g.final_epochs), ("lr", g.final_lr)) if v})


def _s3(params, task, inp: Inputs) -> TrainingSet:
    _, rows, curve = _steps(params, task, inp.s3_dir, "round", params.s3.rounds)
    return TrainingSet(rows, inp.s3_dir, curve)


def _llkd(params, task, inp: Inputs) -> TrainingSet:
    return TrainingSet(read_jsonl(inp.pseudo), inp.pseudo, [])  # every pseudo-label: LLKD selects online, in training


def _llkd_selector(params, rows, spec):
    """Online selection: teacher confident AND student uncertain (adaptive per-class thresholds; seq2seq: one class)."""
    from distill.methods.llkd import Selector

    for r in rows:  # a seq2seq task is one class: its rows have no label
        r["yhat"], r["confidence"] = 0 if spec.seq2seq else spec.label_id(r["label"]), r["meta"]["confidence"]
    lp = params.llkd
    return Selector(rows, 1 if spec.seq2seq else len(spec.labels), lp.selection, lp.momentum, lp.weighting, lp.fraction,
                    params.seed, votes=lp.votes if spec.seq2seq else None)


def _llkd_train(params):
    """LLKD selects where the student is uncertain: its student starts from a random head, as in the paper (a head
    probed on the pseudo-labels would start confident everywhere and select nothing)."""
    if params.llkd.selection in ("adaptive", "student_entropy"):
        return params.train.model_copy(update={"head_init": "random"})
    return params.train


def _labelled(params, task, inp: Inputs) -> TrainingSet:
    """The human-label reference: real labelled rows only, no teacher at all."""
    rows = [{**r, "source": "gold", "round": 0} for split in params.labelled.splits for r in task.load(split)]
    return TrainingSet(rows, task.root, [])


METHODS: dict[str, Method] = {m.name: m for m in [
    Method("zerogen", _zerogen),
    Method("gold", _gold, loss=_gold_loss, train_config=_gold_train),
    Method("s3", _s3),
    Method("llkd", _llkd, selector=_llkd_selector, train_config=_llkd_train),
    Method("labelled", _labelled),
]}


def method_of(params) -> Method:
    if params.method == "auto":
        raise ValueError("method: auto is resolved for a task first (methods/auto.py: resolve; the CLI does it)")
    return METHODS[params.method]

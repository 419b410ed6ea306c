"""LLKD's few-shot prior (`llkd.fewshot_prior`): what the task's labelled fewshot.jsonl rows alone say of a row.
`probe`: a linear probe fitted on frozen embeddings; `setfit`: SetFit (Tunstall et al. 2022: the encoder contrastively
fine-tuned on pairs of those rows, then a logistic-regression head), minutes instead of seconds on a CPU. The llkd_label
stage multiplies the teacher's label distribution by it on the pool; the evaluate stage does the same on test and
validation rows, to score the labeller the student was trained to imitate."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # annotations only: config.py builds its params model from the methods, which use this module
    from distill.config import Params


def fewshot_probe(params: Params, spec, fewshot: list[dict], rows: list[dict]) -> torch.Tensor | None:
    """The few-shot prior: a linear probe on frozen, L2-normalised embeddings (llkd.prior_model's) of the labelled fewshot
    rows (scikit-learn's LogisticRegression objective with C = llkd.prior_c), its label distribution on `rows`.
    None where it is off, or where some label has no fewshot row (the probe would rule that label out)."""
    if params.llkd.fewshot_prior == "none" or params.llkd.prior_weight == 0:
        return None
    missing = set(spec.label_names) - {r["label"] for r in fewshot}
    if missing:
        print(
            f"llkd_label: no few-shot prior (fewshot.jsonl has no row labelled {sorted(missing)[0]!r}); the teacher's labels alone"
        )
        return None
    return fewshot_reference(params, spec, fewshot, rows)


def fewshot_reference(params: Params, spec, fewshot: list[dict], rows: list[dict]) -> torch.Tensor | None:
    """What the task's labelled fewshot rows alone give: the same linear probe (llkd.prior_model's embeddings,
    llkd.prior_c), its label distribution on `rows`, whatever llkd.fewshot_prior says; None where some label has no
    fewshot row. evaluate compares the labeller with it on validation: does the teacher add anything?"""
    probe = fit_reference(params, spec, fewshot)
    return None if probe is None else probe(rows)


_FITTED: dict[str, object] = {}  # fit_reference's probes by what they were fitted from: one fit per process


def fit_reference(params: Params, spec, fewshot: list[dict]):
    """The probe fitted once on the fewshot rows: rows -> its label distribution (None where some label has no
    fewshot row). benchmarks/inference_measure.py times it per row without refitting. A process asking again with the
    same settings and rows gets the same probe back (evaluate asks for the labeller on test and validation rows and
    for the reference: one fit, not three; the fit is deterministic, so nothing else changes)."""
    lp, tc = params.llkd, params.train
    if set(spec.label_names) - {r["label"] for r in fewshot}:
        return None
    # exactly what _fit reads (read here on every call, so a stage's params reads are the same cached or not)
    # (the setfit settings always, so that dvc.yaml can declare what a stage reads whichever prior runs)
    settings = [lp.fewshot_prior == "setfit", lp.prior_model, lp.prior_c, tc.model, tc.pooling, tc.max_length]
    settings += [tc.device, params.seed, tc.setfit_iterations, tc.setfit_batch_size, tc.setfit_lr, tc.setfit_max_steps]
    key = json.dumps(settings + [spec.name, spec.label_names, spec.field_names, fewshot], sort_keys=True, default=str)
    if key not in _FITTED:
        _FITTED.clear()  # one task's probe at a time: it holds an encoder
        _FITTED[key] = _fit(params, spec, fewshot)
    return _FITTED[key]


def _fit(params: Params, spec, fewshot: list[dict]):
    lp, tc = params.llkd, params.train
    from distill.core.devices import autocast, resolve_device, resolve_dtype
    from distill.students.finetune import fit_linear
    from distill.students.model import new_student, resolve_student

    encoder = (
        resolve_student(tc.model)
        if lp.prior_model == "student"
        else resolve_student(lp.prior_model, "llkd.prior_model")
    )
    if lp.fewshot_prior == "setfit":
        return _fit_setfit(params, spec, fewshot, encoder)
    probe = new_student(
        encoder,
        spec.label_names,
        spec.field_names,
        params.seed,
        tc.pooling,
        normalize=True,
        max_length=tc.max_length,
        task=spec.name,
    )
    # Frozen embeddings only: bfloat16 where the device computes it natively (2x faster for mpnet on an AVX512-BF16
    # CPU, cosine 0.99997 to float32's on AG News), the fit itself in float32.
    device = resolve_device(tc.device, "train.device")
    dtype = resolve_dtype("auto", device, training=False)
    with autocast(device, dtype):
        x_few = probe.to(device).embeddings(fewshot)
    y = torch.tensor([spec.label_id(r["label"]) for r in fewshot])
    # scikit-learn's penalty |w|^2 / (2 C n) on its one weight vector per class, or, with two labels, on the one vector
    # w = w_1 - w_0 of its binomial loss: the softmax head's optimum has w_0 = -w_1, hence twice the strength there
    l2 = (1.0 if len(spec.labels) == 2 else 0.5) / (lp.prior_c * len(fewshot))
    head = fit_linear(x_few, torch.nn.functional.one_hot(y, len(spec.labels)).float(), torch.ones(len(fewshot)), l2)

    def distribution(rows: list[dict]) -> torch.Tensor:
        with autocast(device, dtype):
            x = probe.embeddings(rows)
        with torch.no_grad():
            return head(x).softmax(-1)

    return distribution


def _fit_setfit(params: Params, spec, fewshot: list[dict], encoder):
    """SetFit on the fewshot rows (train.setfit_* settings, the seed), converted to a Student: its probabilities.
    Fitted once per settings and rows (minutes on a CPU) and kept in the prior cache, where the teacher_check,
    llkd_label and evaluate stages, and queued experiments, load the same model. Predictions in float32: the
    contrastively tuned encoder was not checked under bfloat16."""
    from distill.core.devices import resolve_device
    from distill.students.model import load_student
    from distill.students.setfit_recipe import require_single_text

    require_single_text(spec.field_names, "llkd.fewshot_prior", "probe")  # before the cache folder is made
    folder = setfit_fit(params.train, params.seed, spec, fewshot, encoder, "few-shot prior")
    model = load_student(folder, str(resolve_device(params.train.device, "train.device")))

    def distribution(rows: list[dict]) -> torch.Tensor:
        return model.proba(rows)

    return distribution


def setfit_fit(tc, seed: int, spec, fewshot: list[dict], encoder: Path, who: str) -> Path:
    """SetFit on the fewshot rows from `encoder` (train.setfit_* of `tc`), saved as a student folder in the prior
    cache, fitted once: llkd.fewshot_prior: setfit and train.init: setfit on the same encoder share one fit. The
    folder is named by what train_setfit reads, so another student (train.model) or prior_c finds the same fit
    (minutes to half an hour on a CPU) instead of refitting it."""
    from distill.core.io import build_once
    from distill.students.setfit_recipe import train_setfit

    reads = [tc.setfit_iterations, tc.setfit_batch_size, tc.setfit_lr, tc.setfit_max_steps, tc.max_length, tc.device]
    reads += [seed, spec.name, spec.label_names, spec.field_names, fewshot]
    key = json.dumps(reads, sort_keys=True, default=str) + _identity(encoder)
    folder = prior_cache() / hashlib.sha256(key.encode()).hexdigest()[:20]
    with build_once(folder) as tmp:
        if tmp is not None:
            log = lambda line: print(f"{who}: {line}")  # noqa: E731
            fitted = train_setfit(fewshot, spec.label_names, spec.field_names, encoder, tc, seed, spec.name, log)
            fitted.save_pretrained(tmp)
    return folder


def start_encoder(tc, seed: int, spec, fewshot: list[dict]):
    """train.init: the train settings a student starts from. setfit: train.model replaced by SetFit's fine-tune of it
    on the fewshot rows (setfit_fit), so that the student's encoder starts where SetFit's ended (its head is the
    recipe's: probed, or random for LLKD). recipe setfit trains SetFit itself: nothing to change."""
    if tc.init != "setfit" or tc.recipe == "setfit":
        return tc
    from distill.core.io import DistillError
    from distill.students.model import resolve_student
    from distill.students.setfit_recipe import require_single_text

    if spec.seq2seq:
        raise DistillError(
            "train.init: setfit starts a classifier's encoder; a seq2seq task needs train.init: pretrained"
        )
    require_single_text(spec.field_names, "train.init", "pretrained")
    folder = setfit_fit(tc, seed, spec, fewshot, resolve_student(tc.model), "train.init: setfit")
    return tc.model_copy(update={"model": str(folder)})


def prior_cache() -> Path:
    """$DISTILL_PRIOR_CACHE, else `.cache/prior/` at the repository's real root (shared by queued experiments, like the
    LLM cache; `make clean` empties it). A folder per fit, named by a hash of what it was fitted from: the settings,
    the task's labels and fewshot rows, and the encoder folder's files (names, sizes, mtimes)."""
    from distill.core.io import project_root

    return Path(os.environ.get("DISTILL_PRIOR_CACHE") or project_root() / ".cache" / "prior")


def _identity(encoder: Path) -> str:
    files = sorted(p for p in Path(encoder).iterdir() if p.is_file())
    return json.dumps(
        [str(Path(encoder).resolve())] + [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files]
    )

"""The `setfit` recipe (Tunstall et al. 2022), through the `setfit` package: contrastive fine-tuning of the
sentence encoder on pairs of same-/different-label rows, then a logistic-regression head on its embeddings.

The result is converted into the project's own student folder (encoder + mean pooling + normalisation + linear
head), so evaluate, register and MLflow treat it like any other student; the conversion is exact (a test
compares probabilities with SetFit's own `predict_proba`). Single-text tasks only: SetFit embeds one text.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any, Sequence

import torch

from distill.core.io import DistillError


def train_setfit(
    rows: Sequence[dict[str, Any]],
    labels: Sequence[str],
    fields: Sequence[str],
    model_path,
    cfg,
    seed: int,
    task: str = "",
    log=print,
):
    """Train SetFit on labelled rows (hard labels; teacher probabilities are not used) -> a Student."""
    require_single_text(fields, "train.recipe", "train.recipe: finetune")
    if len({r["label"] for r in rows}) < 2:
        raise DistillError("train.recipe: setfit needs examples of at least two labels")
    os.environ.setdefault("WANDB_DISABLED", "true")
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    torch.manual_seed(seed)
    from distill.students.distributed import train_device

    model = SetFitModel.from_pretrained(str(model_path), device=train_device(cfg.device))
    data = Dataset.from_list([{"text": r[fields[0]], "label": labels.index(r["label"])} for r in rows])
    with tempfile.TemporaryDirectory() as scratch:  # SetFit's Trainer wants an output folder; nothing is kept
        args = TrainingArguments(
            output_dir=scratch,
            batch_size=cfg.setfit_batch_size,
            num_epochs=1,
            num_iterations=cfg.setfit_iterations,
            max_steps=cfg.setfit_max_steps or -1,
            body_learning_rate=cfg.setfit_lr,
            max_length=cfg.max_length,
            seed=seed,
            report_to="none",
            show_progress_bar=False,
            save_strategy="no",
            logging_strategy="no",
        )
        Trainer(model=model, args=args, train_dataset=data).train()
    log(f"setfit: {len(rows)} rows, {cfg.setfit_iterations} pair iterations, body lr {cfg.setfit_lr}")
    return to_student(model, labels, fields, cfg.max_length, task)


def require_single_text(fields: Sequence[str], field: str, instead: str) -> None:
    """SetFit embeds one text per row: on a text-pair task, one error naming the param that asked for it."""
    if len(fields) != 1:
        raise DistillError(f"{field}: setfit embeds single texts; this task has text pairs (use {instead})")


def to_student(model, labels: Sequence[str], fields: Sequence[str], max_length: int, task: str = ""):
    """SetFitModel (SentenceTransformer body + sklearn LogisticRegression head) -> Student, exactly."""
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    from distill.students.model import Student

    body = model.model_body
    modules = list(body)
    transformer = next(m for m in modules if isinstance(m, Transformer))
    pooling = next(m for m in modules if isinstance(m, Pooling))
    if pooling.pooling_mode not in ("mean", "cls"):
        raise DistillError(f"setfit: a body with {pooling.pooling_mode} pooling cannot be converted (mean or cls only)")
    normalize = any(isinstance(m, Normalize) for m in modules) or bool(getattr(model, "normalize_embeddings", False))
    student = Student(
        transformer.auto_model, transformer.tokenizer, labels, fields, pooling.pooling_mode, normalize, max_length, task
    )
    head = model.model_head
    coef, bias, classes = (
        torch.tensor(head.coef_, dtype=torch.float32),
        torch.tensor(head.intercept_, dtype=torch.float32),
        [int(c) for c in head.classes_],
    )
    k = len(labels)
    weight, b = torch.zeros(k, coef.shape[1]), torch.full((k,), -1e4)  # a label never seen in training: never predicted
    if len(classes) == 2 and coef.shape[0] == 1:  # binary LR: sigmoid(w.x + c) == softmax([0, w.x + c])[1]
        weight[classes[1]], b[classes[1]], b[classes[0]] = coef[0], bias[0], 0.0
    else:
        for row, c in enumerate(classes):
            weight[c], b[c] = coef[row], bias[row]
    with torch.no_grad():
        student.head.weight.copy_(weight)
        student.head.bias.copy_(b)
    student.eval()
    return student.to(next(transformer.auto_model.parameters()).device)  # the head joins the body

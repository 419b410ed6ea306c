"""Building blocks of the local backend's fast paths: the sampler and two KV cache layers.

The cache layers work with any transformers causal LM whose attention reads and extends a `Cache` (Llama, Qwen,
Mistral, SmolLM...). They attend over everything: a model with sliding-window layers shorter than its prompts
(some Gemma layers) would see further back than it was trained to.
"""

from __future__ import annotations

import os
from typing import Sequence

import torch
from transformers.cache_utils import DynamicLayer

from distill.teachers.base import Decoding


def _draw(probs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Column of each row's draw: its uniform u inverted through the row's cumulative (unnormalised) mass."""
    cum = probs.cumsum(-1)
    total = cum[:, -1:]
    target = torch.minimum(u[:, None] * total, torch.nextafter(total, torch.zeros_like(total)))  # strictly below total
    return torch.searchsorted(cum, target, right=True).squeeze(-1)


def sample_next(logits: torch.Tensor, decoding: Decoding, gens: list[torch.Generator]) -> torch.Tensor:
    """One token per row: temperature, top-k, nucleus (top-p), then a draw from that row's own generator.

    At batch 32, sorting the whole vocabulary (49k) for top-p and torch.multinomial (one exponential draw per
    vocabulary entry) cost more than the model's decoding step. Instead a partial top-k (256) is sorted and
    widened only for the rows whose nucleus it does not hold (a third of SmolLM2's steps at T=1, top-p 0.9,
    almost all within 2k), and each row inverts one uniform from its generator through its candidates' mass.
    """
    if decoding.temperature <= 0:
        return logits.argmax(-1)
    logits = logits / decoding.temperature
    u = torch.stack([torch.rand((), generator=g) for g in gens])
    if decoding.top_k <= 0 and decoding.top_p >= 1.0:
        return _draw(logits.softmax(-1), u)
    vocab = logits.shape[-1]
    k = min(decoding.top_k if decoding.top_k > 0 else 256, vocab)
    lse = None if decoding.top_k > 0 else torch.logsumexp(logits, -1, keepdim=True)
    out = torch.empty(len(logits), dtype=torch.long)
    rows = torch.arange(len(logits))
    while len(rows):
        vals, ids = torch.topk(logits[rows], k, dim=-1)
        # the nucleus is taken within the top-k survivors when top_k is set, else over the whole vocabulary
        probs = (vals - (torch.logsumexp(vals, -1, keepdim=True) if lse is None else lse[rows])).exp()
        before = probs.cumsum(-1) - probs  # mass ranked strictly above each candidate
        held = (before[:, -1] + probs[:, -1] > decoding.top_p) | (decoding.top_k > 0 or k == vocab)
        probs, before = probs[held], before[held]
        if decoding.top_p < 1.0:
            probs = probs.masked_fill(before > decoding.top_p, 0.0)  # the smallest set whose mass reaches top_p
        out[rows[held]] = ids[held].gather(-1, _draw(probs, u[rows[held]])[:, None]).squeeze(-1)
        rows, k = rows[~held], (k * 8 if k * 8 <= vocab // 4 else vocab)  # past a quarter, a full sort is as cheap
    return out


def shared_prefix_len(seqs: Sequence[Sequence[int]]) -> int:
    """Longest common token prefix, leaving every sequence at least its last token (it must run to give logits)."""
    return max(0, min(len(os.path.commonprefix(list(seqs))), min(map(len, seqs)) - 1))


class GrowingLayer(DynamicLayer):
    """One KV cache layer in a preallocated buffer: a new token is written in place (DynamicLayer re-copies the
    whole cache every step). It may start from a batch-1 prefix state, copied to every row on the first update."""

    def __init__(self, capacity: int, prefix: DynamicLayer | None = None):
        super().__init__()
        self.capacity, self.n, self._k, self._v = capacity, 0, None, None
        if prefix is not None and prefix.get_seq_length():
            self.keys, self.values, self.n, self.is_initialized = (
                prefix.keys,
                prefix.values,
                prefix.get_seq_length(),
                True,
            )
            self.dtype, self.device = prefix.keys.dtype, prefix.keys.device

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if self._k is None:
            b, h, _, _ = key_states.shape
            self._k = key_states.new_empty(b, h, self.capacity, key_states.shape[-1])
            self._v = value_states.new_empty(b, h, self.capacity, value_states.shape[-1])
            if self.n:
                self._k[:, :, : self.n], self._v[:, :, : self.n] = self.keys, self.values
            self.dtype, self.device, self.is_initialized = key_states.dtype, key_states.device, True
        q = key_states.shape[-2]
        self._k[:, :, self.n : self.n + q], self._v[:, :, self.n : self.n + q] = key_states, value_states
        self.n += q
        self.keys, self.values = self._k[:, :, : self.n], self._v[:, :, : self.n]
        return self.keys, self.values

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self._k, self._v = self._k[indices], self._v[indices]
        self.keys, self.values = self._k[:, :, : self.n], self._v[:, :, : self.n]


class SharedPrefixLayer(DynamicLayer):
    """A batch-1 prefix state that every row of one forward pass attends to. [prefix, new] is built per layer
    and dropped after it, so memory never holds rows x prefix for all layers (AG News with 16 demonstrations:
    ~1k prefix tokens x 46 kB x rows) and the shared state is never modified (no copy needed)."""

    def __init__(self, prefix: DynamicLayer):
        super().__init__()
        self.keys, self.values, self.is_initialized = prefix.keys, prefix.values, True
        self.dtype, self.device = prefix.keys.dtype, prefix.keys.device

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        b = key_states.shape[0]
        return (
            torch.cat([self.keys.expand(b, -1, -1, -1), key_states], dim=-2),
            torch.cat([self.values.expand(b, -1, -1, -1), value_states], dim=-2),
        )

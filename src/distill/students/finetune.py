"""The `finetune` recipe: the student's training loop, readable top to bottom, the same for every method.

A fixed schedule (no early stop on a dozen synthetic rows): `epochs` passes, but at least `min_steps` optimiser
steps, so 30 rows get as many updates as 3000. Targets are the teacher's label distribution (`targets: soft`,
knowledge distillation) or one-hot labels (`hard`); rows without teacher probabilities (real labels, S3's
extrapolations) are one-hot either way. `select_on_validation` optionally keeps the epoch that scores best on
real labelled rows instead of the last one. `group_by_length` batches rows of similar length (as transformers'
Trainer option of that name): a batch pads to its own longest row, and random batches of SST-2 or AG News pool
rows carry twice their real tokens, so grouped batches train ~1.5x faster on the CPU (docs/benchmarks.md).
"""

from __future__ import annotations

import copy
import math
import random
import time
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F

from distill.core.devices import autocast, resolve_dtype
from distill.core.io import DistillError
from distill.students import distributed

Loss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted mean of -sum_k q_k log p_k; with one-hot q this is plain cross-entropy."""
    return sequence_loss(-(targets * F.log_softmax(logits.float(), -1)).sum(-1), targets, weights)


def sharpen(probs: Sequence[float], temperature: float) -> list[float]:
    """q_k ∝ p_k^(1/T): T < 1 sharpens the teacher's distribution, T > 1 softens it, T = 1 keeps it."""
    q = [max(p, 1e-12) ** (1.0 / temperature) for p in probs]
    z = sum(q)
    return [x / z for x in q]


def target_rows(rows: Sequence[dict[str, Any]], labels: Sequence[str], mode: str, temperature: float) -> torch.Tensor:
    """[N, K] training targets: the teacher's distribution (soft, where the row has one) or one-hot labels."""
    out = torch.zeros(len(rows), len(labels))
    for i, r in enumerate(rows):
        probs = r.get("meta", {}).get("teacher_probs") if mode == "soft" else None
        if probs and set(probs) == set(labels):
            out[i] = torch.tensor(sharpen([probs[l] for l in labels], temperature))
        else:
            out[i, labels.index(r["label"])] = 1.0
    return out


def schedule(n_rows: int, batch_size: int, epochs: int, min_steps: int) -> tuple[int, int]:
    """(epochs, total steps): `epochs` passes, more when that would be fewer than `min_steps` steps."""
    per_epoch = math.ceil(n_rows / batch_size)
    epochs = max(epochs, math.ceil(min_steps / per_epoch))
    return epochs, epochs * per_epoch


def row_length(row: dict[str, Any]) -> int:
    """Characters of a row's text fields (every string but its id and source): the length proxy for batching."""
    return sum(len(v) for k, v in row.items() if isinstance(v, str) and k not in ("id", "source"))


def epoch_batches(lengths: Sequence[int], batch_size: int, rng: random.Random, group: int = 50) -> list[list[int]]:
    """One epoch's batches of row indices: a shuffle cut into batches (group 0), or, grouped by length, the shuffle
    cut into mega-batches of `group` batches, each sorted by length and cut into batches, then all batches shuffled.
    Either way ceil(n / batch_size) batches, every row once, only the last batch short; a mega-batch still draws
    from the whole data set, so batch contents stay random but for length."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    if group <= 0:
        return [order[s : s + batch_size] for s in range(0, len(order), batch_size)]
    span = group * batch_size
    batches = []
    for m in range(0, len(order), span):
        mega = sorted(order[m : m + span], key=lambda i: -lengths[i])
        batches += [mega[s : s + batch_size] for s in range(0, len(mega), batch_size)]
    last = batches.pop() if len(order) % batch_size else None  # the one short batch stays last (a full step count)
    rng.shuffle(batches)
    return batches + ([last] if last else [])


def fit_head(
    student, rows: Sequence[dict[str, Any]], targets: torch.Tensor, weights: torch.Tensor, l2: float = 1e-3
) -> None:
    """Linear probe: fit the head on frozen embeddings first (LP-FT, Kumar et al. 2022), so fine-tuning starts
    from a sensible classifier instead of a random one that would first scramble the encoder."""
    student.head.load_state_dict(fit_linear(student.embeddings(rows), targets, weights, l2).state_dict())


def fit_linear(x: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor, l2: float) -> torch.nn.Linear:
    """A linear classifier on fixed features x: weighted soft cross-entropy + l2 |W|^2, by L-BFGS from zero."""
    head = torch.nn.Linear(x.shape[1], targets.shape[1])
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.zeros_(head.bias)
    opt = torch.optim.LBFGS(head.parameters(), lr=1.0, max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = soft_cross_entropy(head(x), targets, weights) + l2 * head.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return head


def sequence_loss(per_row: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted mean of per-row losses: the generative student's loss as it is (its forward pass gives each row's mean
    token NLL; `targets` is unused), and soft_cross_entropy's last step."""
    return (per_row * weights).sum() / weights.sum().clamp(min=1e-8)


def _selected(student, selector, batch: list[dict], idx: list[int], w: torch.Tensor, device, amp):
    """LLKD's online selection, applied before the training forward: the selector reads the batch's logits from a
    forward pass without gradients (in training mode, as the loss's own pass), and only the rows it keeps run
    forward and backward. A dropped row's weight is 0, so the loss is what the whole batch would give (up to
    dropout: the selector's pass draws its own masks); LLKD keeps ~20 % of a batch, so this costs ~half of running
    every row with gradients. A batch that keeps nothing still steps, on one row at weight 0, as every process under
    `accelerate launch` must."""
    logits = None
    if getattr(selector, "needs_logits", True):  # fixed selections (all, teacher_topk, random) do not read them
        with torch.no_grad(), autocast(device, amp):
            logits = student(student.encode(batch)).float().cpu()
    w = w * selector(batch, logits).to(device)
    kept = w.nonzero().squeeze(-1).tolist() or [0]
    return [batch[i] for i in kept], [idx[i] for i in kept], w[kept]


def finetune(
    student,
    rows: list[dict[str, Any]],
    cfg,
    seed: int,
    loss_fn: Loss = soft_cross_entropy,
    selector=None,
    select_rows: Sequence[dict[str, Any]] = (),
    log: Callable[[str], None] = print,
    epochs: int | None = None,
    lr: float | None = None,
    probe: bool = True,
) -> list[dict[str, float]]:
    """Train `student` in place on rows ({fields..., label, optional weight, optional meta.teacher_probs}).

    `selector` (optional, LLKD's online selection) is called on every batch with the rows and the student's
    logits (None where its `needs_logits` is False) and returns per-row weight multipliers (0 = not selected); only
    the kept rows train (`_selected`); its `epoch_stats()` join each epoch's record. `epochs` / `lr` override cfg
    (GOLD's refresh); `epochs` given is exactly that many passes (no `min_steps`).
    """
    from transformers import get_linear_schedule_with_warmup

    if not rows:
        raise DistillError("no training data: every sample was filtered out (see the data stages' metrics)")
    torch.manual_seed(seed)
    rng = random.Random(seed)
    device = distributed.train_device(cfg.device)
    amp = resolve_dtype(distributed.launcher_precision(cfg.precision), device, training=True)
    student.to(device)
    generative = getattr(student, "generative", False)  # seq2seq: a causal LM whose forward gives per-row losses
    targets = (
        torch.zeros(len(rows), 1) if generative else target_rows(rows, student.labels, cfg.targets, cfg.kd_temperature)
    )
    weights = torch.tensor([float(r.get("weight", 1.0)) for r in rows])
    if probe and cfg.head_init == "probe" and not generative:
        fit_head(student, rows, targets, weights)  # on the CPU: one L-BFGS fit of a [K, H] matrix
    targets, weights = targets.to(device), weights.to(device)
    scaler = torch.amp.GradScaler(device.split(":")[0], enabled=amp == torch.float16)  # float16 needs loss scaling
    # A method's own `epochs` (GOLD's refresh_epochs) is the whole schedule: min_steps, there for the final student on
    # small data, made GOLD's 8-epoch refreshes 30-100 epochs of one iteration's rows and most of its wall time.
    epochs, min_steps = (epochs, 0) if epochs else (cfg.epochs, cfg.min_steps)
    n_epochs, total = schedule(len(rows), cfg.batch_size, epochs, min_steps)
    body_lr = lr or cfg.lr
    opt = torch.optim.AdamW(student.param_groups(body_lr, cfg.head_lr_scale), weight_decay=cfg.weight_decay)
    sched = get_linear_schedule_with_warmup(opt, int(cfg.warmup_ratio * total), total)
    lengths = [row_length(r) for r in rows]
    best, best_state, history = -1.0, None, []
    with distributed.data_parallel(student, device) as model:  # `student` itself unless launched with N processes
        for epoch in range(1, n_epochs + 1):
            student.train()
            t0, seen_loss, seen = time.perf_counter(), 0.0, 0
            # the same batches in every process (same seed): each takes its share of each batch
            for batch_idx in epoch_batches(lengths, cfg.batch_size, rng, 50 if cfg.group_by_length else 0):
                idx = distributed.shard(batch_idx)
                if not idx:  # a last batch smaller than the process count: skipped by every process alike
                    break
                batch, w = [rows[i] for i in idx], weights[idx]
                n_batch = len(batch)  # the loss is a weighted mean over the batch, whatever the selector kept
                if selector is not None:
                    batch, idx, w = _selected(student, selector, batch, idx, w, device, amp)
                with autocast(device, amp):
                    logits = model(student.encode(batch)).float()
                loss = loss_fn(logits, targets[idx], w)
                opt.zero_grad()
                scaler.scale(loss).backward()
                scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
                scaler.step(opt)
                scaler.update()
                sched.step()
                seen_loss, seen = seen_loss + float(loss.detach()) * n_batch, seen + n_batch
            seen_loss, seen = distributed.all_sum([seen_loss, seen], device)
            record = {
                "epoch": epoch,
                "train_loss": seen_loss / max(seen, 1),
                "seconds": time.perf_counter() - t0,
                **(selector.epoch_stats() if selector is not None else {}),
            }
            if select_rows:
                record["select_accuracy"] = student.accuracy(select_rows)
                if record["select_accuracy"] > best:
                    best, best_state = record["select_accuracy"], copy.deepcopy(student.state_dict())
            history.append(record)
            log(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()))
        del model  # the data-parallel wrapper is freed inside its block (distributed.data_parallel)
    if best_state is not None:
        student.load_state_dict(best_state)
    return history

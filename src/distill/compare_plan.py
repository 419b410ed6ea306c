"""What `distill compare` runs: the (task, method, seed) combinations, their experiment names and params, and the
command-line values parsed and checked before anything is queued (compare.py queues, watches and reports)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import yaml

from distill.core.io import DistillError


@dataclass(frozen=True)
class Combo:
    comparison: str
    task: str
    method: str
    seed: int

    @property
    def name(self) -> str:
        """The DVC experiment name (a git ref: letters, digits, '-' and '_' only)."""
        safe = lambda s: re.sub(r"[^A-Za-z0-9_-]+", "-", s)  # noqa: E731
        return f"{self.comparison}-{safe(self.task)}-{self.method}-s{self.seed}"

    def params(self) -> dict[str, Any]:
        """The params.yaml keys compare sets for this run (-S may not set task, method, seed, comparison; the
        reference's own recipe keys are set after -S, so they win over it)."""
        own = {"task": self.task, "method": self.method, "seed": self.seed, "comparison": self.comparison}
        return {**own, **REFERENCE} if self.method == "setfit" else own


# `setfit` in --methods: what a user would do instead of distilling. SetFit (contrastive pairs + a logistic head) on
# the task's fewshot.jsonl alone, no teacher: the `labelled` method with the setfit recipe. Single-text tasks only.
REFERENCE = {"method": "labelled", "labelled.splits": ["fewshot"], "train.recipe": "setfit"}
SET_BY_COMPARE = ("task", "method", "seed", "comparison")


def plan(
    comparison: str, tasks: Sequence[str], methods: Sequence[str], seeds: Sequence[int], no_setfit: Sequence[str] = ()
) -> list[Combo]:
    """Every (task, method, seed); the SetFit reference only on the tasks it can train (not those in no_setfit)."""
    return [
        Combo(comparison, t, m, s)
        for t in tasks
        for m in methods
        for s in seeds
        if not (m == "setfit" and t in no_setfit)
    ]


def setfit_unfit(root: Path, tasks: Sequence[str]) -> list[str]:
    """The tasks the SetFit reference cannot train: text pairs and seq2seq (its recipe embeds one text)."""
    from distill.core.tasks import load_task

    out = []
    for task in tasks:
        folder = root / "data" / "tasks" / task
        try:
            if folder.is_dir() and load_task(folder).spec.kind != "single":
                out.append(task)
        except DistillError:  # a broken folder: its runs fail in check_task and say why there
            pass
    return out


def parse_list(text: str, option: str) -> list[str]:
    items = [x.strip() for x in text.split(",") if x.strip()]
    if not items:
        raise DistillError(f"{option}: give at least one value (comma-separated)")
    return list(dict.fromkeys(items))


def parse_seeds(text: str) -> list[int]:
    """'3' -> seeds 0, 1, 2; '0,7,42' -> those seeds; '7,' -> seed 7 alone (a bare number is a count)."""
    try:
        if "," not in text:
            n = int(text)
            if n < 1:
                raise ValueError
            return list(range(n))
        return [int(s) for s in parse_list(text, "--seeds")]
    except ValueError:
        raise DistillError(
            f"--seeds: '{text}' is neither a count (3 = seeds 0,1,2; 1 = seed 0) nor a list of seeds (0,7,42; a single seed: 7,)"
        ) from None


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """-S key=value (dotted keys, YAML values, as `dvc exp run -S`)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise DistillError(f"-S {item}: expected key=value, e.g. -S train.epochs=2")
        if key in SET_BY_COMPARE:
            raise DistillError(
                f"-S {item}: {key} is set by compare itself (use --tasks / --methods / --seeds / --name)"
            )
        out[key.strip()] = yaml.safe_load(value) if value.strip() else None
    return out


def check_params(params_path: Path, overrides: dict[str, Any], combos: Sequence[Combo]) -> None:
    """Every combination's params.yaml (with -S applied) validates, before anything is queued."""
    from distill.config import Params
    from distill.core.io import first_error, read_text
    from pydantic import ValidationError

    base = yaml.safe_load(read_text(params_path)) or {}
    for c in {c.method: c for c in combos}.values():  # one run per method: the rest differ only in task name and seed
        params = json.loads(json.dumps(base))
        for key, value in {**overrides, **c.params()}.items():
            node = params
            *parents, leaf = key.split(".")
            for p in parents:
                if not isinstance(node.get(p), dict):
                    raise DistillError(f"-S {key}: params.yaml has no section '{p}'")
                node = node[p]
            node[leaf] = value
        try:
            Params.model_validate(params)
        except ValidationError as e:
            secret = e.errors()[0]["type"] == "secret"  # a pasted key is not echoed: the overrides are named only
            said = ", ".join(k if secret else f"{k}={v}" for k, v in overrides.items()) or "(none)"
            raise DistillError(f"{params_path} with -S {said}: {first_error(e)}") from None

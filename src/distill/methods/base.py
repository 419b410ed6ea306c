"""What a method is, to the shared stages: where its training set comes from and its hooks into training,
evaluation and the command line. Each method fills one `Method` in methods/<name>/method.py."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from distill.core.io import read_json, read_jsonl


@dataclass(frozen=True)
class TrainingSet:
    rows: list[dict[str, Any]]
    source: Path  # named in errors about these rows
    curve: list[dict[str, Any]]  # one point per iteration / round (iterative methods)
    dropped: int = 0


def _none(*args):
    return None


def _all_rows(params, fields, validation):
    return validation


def _teacher_labels(params, spec, fewshot, rows, teacher_probs):
    return teacher_probs


@dataclass(frozen=True)
class Method:
    name: str
    # (params, task, path) -> TrainingSet; `path` is the method's own output, as dvc.yaml passes it to assemble
    training_set: Callable[[Any, Any, Path], TrainingSet]
    params: type | None = None  # its params.yaml section, named like the method (methods/<name>/params.py)
    loss: Callable[[Any], Any] = _none  # (params) -> loss_fn(logits, targets, weights) | None (soft CE)
    selector: Callable[[Any, list[dict], Any], Any] = _none  # (params, rows, spec) -> per-batch selector | None
    train_config: Callable[[Any], Any] = lambda params: params.train  # (params) -> the TrainParams its student uses
    # (params, fields, validation rows) -> the rows its runs are judged on (those its data never depended on)
    judged_validation: Callable[[Any, list[str], list[dict]], list[dict]] = _all_rows
    # (params, spec, fewshot, rows, teacher's label distributions) -> what its student learned from, on `rows`
    # (None: real or requested labels, nothing to score)
    labeller: Callable[[Any, Any, list[dict], list[dict], list], Any] = _teacher_labels
    # the module whose COMMANDS are its own stages' click commands (cli.py adds them; named, not imported, here: a
    # stage's code does not depend on the command line)
    commands: str = ""
    reads_output: bool = True  # False: no stage of its own (`labelled`); assemble passes it no path
    kinds: tuple[str, ...] = ("classification", "seq2seq")  # the task kinds it handles


def iterative_set(root: Path, name: str, steps) -> tuple[Path, TrainingSet]:
    """Iterative methods (GOLD, S3): the last step's folder holds all data so far; every step is a curve point."""
    last = root / f"{name}_{steps[-1].i if steps else 0}"
    curve = [{"iteration": st.i, **read_json(root / f"{name}_{st.i}" / "metrics.json")} for st in steps]
    return last, TrainingSet(read_jsonl(last / "data.jsonl"), root, curve)


def source_files(name: str) -> list[Path]:
    """The code a run of method `name` executes in methods/: its own folder, and what every method shares (the
    `Method` record, the registry, the `auto` rule). The resolve_method stage hashes these files, so the shared stages
    (assemble, train, evaluate, register) depend on the one method that runs, not on every method's folder."""
    here = Path(__file__).parent
    return sorted((here / name).rglob("*.py")) + [here / "base.py", here / "registry.py", here / "auto.py"]


def source_sha256(name: str) -> str:
    digest = hashlib.sha256()
    for path in source_files(name):
        digest.update(path.relative_to(Path(__file__).parent).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()

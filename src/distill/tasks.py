"""A task is a folder `data/tasks/<name>/`: `task.yaml` plus test/validation/fewshot/unlabeled JSONL.

Nothing here is specific to one dataset: any folder in this format works with no code change.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from distill.io import DistillError, load_yaml_model, read_jsonl

SPLITS = ("test", "validation", "fewshot", "unlabeled")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FieldSpec(_Strict):
    name: str = Field(description="JSONL key of this text field, e.g. text, text_a")
    display: str = Field(description="how the field is introduced in prompts, e.g. Review, Premise")
    description: str = Field(description="what the field holds, in words the LLM reads, e.g. 'a movie review sentence'")


class LabelSpec(_Strict):
    name: str = Field(description="label string exactly as in the JSONL files")
    description: str = Field(description="one line the LLM reads when asked to write an example of this label")
    verbalizer: str | None = Field(None, description="word scored after the answer prefix (default: the name)")

    @property
    def word(self) -> str:
        return self.verbalizer or self.name


class TaskSpec(_Strict):
    name: str = Field("", description="task name (default: the folder name)")
    kind: Literal["single", "pair"] = Field(description="single: one text field; pair: two (premise, hypothesis)")
    instruction: str = Field(description="one line that opens every classification (scoring) prompt")
    answer_name: str = Field("Label", description="what the answer line is called in scoring prompts")
    fields: list[FieldSpec] = Field(description="text fields, in prompt order")
    labels: list[LabelSpec] = Field(min_length=2, description="label set, in id order")

    @model_validator(mode="after")
    def _check(self) -> "TaskSpec":
        want = 1 if self.kind == "single" else 2
        if len(self.fields) != want:
            raise ValueError(f"kind '{self.kind}' needs {want} field(s), got {len(self.fields)}")
        names = [l.name for l in self.labels]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate label names in {names}")
        words = [l.word for l in self.labels]
        if len(set(words)) != len(words):
            raise ValueError(f"duplicate verbalizers in {words}")
        return self

    # -- convenience -------------------------------------------------------------------------------
    @property
    def label_names(self) -> list[str]:
        return [l.name for l in self.labels]

    @property
    def field_names(self) -> list[str]:
        return [f.name for f in self.fields]

    def label_id(self, name: str) -> int:
        return self.label_names.index(name)


class Task:
    """A loaded task folder: its spec plus validated access to its splits."""

    def __init__(self, root: Path, spec: TaskSpec):
        self.root, self.spec = root, spec

    @property
    def name(self) -> str:
        return self.spec.name

    def path(self, split: str) -> Path:
        return self.root / f"{split}.jsonl"

    def load(self, split: str, labelled: bool | None = None) -> list[dict[str, Any]]:
        """Rows of a split, each checked: text fields present, label known (file:line errors)."""
        if split not in SPLITS:
            raise DistillError(f"unknown split '{split}' (expected one of {', '.join(SPLITS)})")
        labelled = split != "unlabeled" if labelled is None else labelled
        path = self.path(split)
        rows = read_jsonl(path, required=self.spec.field_names)
        if labelled:
            check_labels(rows, self.spec, path)
        for i, row in enumerate(rows):
            row.setdefault("id", f"{split}-{i}")
        return rows


def check_labels(rows: list[dict[str, Any]], spec: TaskSpec, path: Path | str) -> None:
    known = set(spec.label_names)
    for row in rows:
        label = row.get("label")
        if label not in known:
            raise DistillError(
                f"{path}:{row.get('_line', '?')}: unknown label {label!r} (task.yaml labels: {', '.join(spec.label_names)})"
            )


def load_task(task_dir: str | Path) -> Task:
    root = Path(task_dir)
    spec_path = root / "task.yaml"
    if not root.is_dir():
        raise DistillError(f"{root}: unknown task (no such folder; a task is a folder with task.yaml and JSONL splits)")
    if not spec_path.is_file():
        raise DistillError(f"{spec_path}: file not found (every task folder needs a task.yaml)")
    spec = load_yaml_model(spec_path, TaskSpec)
    if not spec.name:
        spec.name = root.name
    return Task(root, spec)

"""A task is a folder `data/tasks/<name>/`: `task.yaml` plus test/validation/fewshot/unlabeled JSONL.

Nothing here is specific to one dataset: any folder in this format works with no code change. Without a
task.yaml the spec is inferred from the rows (and a DATASET.md card, if any): generic prompts, so a task.yaml
with real label descriptions still does better.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from distill.core.io import DistillError, atomic_dir, load_yaml_model, read_jsonl

SPLITS = ("test", "validation", "fewshot", "unlabeled")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FieldSpec(_Strict):
    name: str = Field(description="JSONL key of this text field, e.g. text, text_a")
    display: str = Field(description="how the field is introduced in prompts, e.g. Review, Premise")
    description: str = Field(description="what the field holds, in words the LLM reads, e.g. 'a movie review sentence'")
    form: Literal["any", "question"] = Field(
        "any", description="question: every example is a question; generated texts without a question mark are dropped"
    )


class LabelSpec(_Strict):
    name: str = Field(description="label string exactly as in the JSONL files")
    description: str = Field(description="one line the LLM reads when asked to write an example of this label")
    verbalizer: str | None = Field(None, description="word scored after the answer prefix (default: the name)")

    @field_validator("name", mode="before")
    @classmethod
    def _integer_name(cls, v: Any) -> Any:
        """`name: 0` in YAML is an integer: the label named "0" (rows exported by Hugging Face hold integer ids)."""
        return str(v) if isinstance(v, int) and not isinstance(v, bool) else v

    @property
    def word(self) -> str:
        return self.verbalizer or self.name


class TargetSpec(_Strict):
    """seq2seq tasks: what the student writes for each input."""

    name: str = Field("target", description="JSONL key of the answer, e.g. target")
    display: str = Field("Answer", description="how the answer line is introduced in prompts")
    equation: str | None = Field(
        None,
        description="JSONL key of a worked arithmetic equation (SVAMP: equation), shown "
        "in prompts, written by the student before its answer, checked by the safe evaluator",
    )
    check: Literal["numeric", "exact"] = Field(
        "exact", description="answer check: numeric (5 == 5.0) or exact text match"
    )


class TaskSpec(_Strict):
    name: str = Field("", description="task name (default: the folder name)")
    kind: Literal["single", "pair", "seq2seq"] = Field(
        description="single: one text field; pair: two (premise, hypothesis); seq2seq: an input and a written target"
    )
    instruction: str = Field(description="one line that opens every classification (scoring) prompt")
    answer_name: str = Field("Label", description="what the answer line is called in scoring prompts")
    fields: list[FieldSpec] = Field(description="text fields, in prompt order")
    labels: list[LabelSpec] = Field(default_factory=list, description="label set, in id order (classification kinds)")
    target: TargetSpec | None = Field(None, description="seq2seq: the answer field and its check")
    demos_per_prompt: int | None = Field(
        None,
        ge=0,
        description="real same-label examples (fewshot.jsonl) in each generation prompt of this task; "
        "overrides prompts.demos_per_prompt (None = use it). Inferred specs show 3: their label descriptions are generic",
    )
    max_new_tokens: int | None = Field(
        None,
        gt=0,
        description="tokens the teacher may write per generated example of this task; overrides "
        "generate.max_new_tokens (None = use it). A worked word problem needs ~100, a review sentence 48",
    )
    # Where the label names came from, for errors about a row's label: not a field, so never written to a task.yaml
    _labels_from: str = PrivateAttr("task.yaml labels")

    @model_validator(mode="after")
    def _check(self) -> "TaskSpec":
        want = 2 if self.kind == "pair" else 1
        if len(self.fields) != want:
            raise ValueError(f"kind '{self.kind}' needs {want} field(s), got {len(self.fields)}")
        if self.kind == "seq2seq":
            if self.target is None or self.labels:
                raise ValueError("kind 'seq2seq' needs a target (and no labels)")
            return self
        if len(self.labels) < 2 or self.target is not None:
            raise ValueError(f"kind '{self.kind}' needs at least 2 labels (and no target)")
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

    @property
    def seq2seq(self) -> bool:
        return self.kind == "seq2seq"

    @property
    def answer_keys(self) -> list[str]:
        """What a labelled row holds besides its text: the label, or (seq2seq) the target and its worked equation."""
        if self.target:
            return [self.target.name] + ([self.target.equation] if self.target.equation else [])
        return ["label"]

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
            if not self.spec.target:
                for row in rows:  # an integer id (0) becomes its label name ("0"): every later stage compares names
                    row["label"] = label_name(row["label"])
        for i, row in enumerate(rows):
            row.setdefault("id", f"{split}-{i}")
        return rows

    def load_all(self) -> dict[str, list[dict[str, Any]]]:
        """Every split, read and checked (file:line errors); only unlabeled.jsonl may be empty."""
        splits = {}
        for split in SPLITS:
            rows = self.load(split)
            if not rows and split != "unlabeled":
                raise DistillError(f"{self.path(split)}: no rows (every task needs labelled {split} rows)")
            splits[split] = rows
        return splits

    def check(self) -> dict[str, int]:
        """Read and check every split (file:line errors) -> rows per split. Stages call this before any LLM call, so
        a bad test.jsonl stops the pipeline at its start, not after generation and training."""
        return {split: len(rows) for split, rows in self.load_all().items()}


def label_counts(spec: TaskSpec, rows: list[dict[str, Any]]) -> dict[str, int]:
    return {f"kept.{l}": sum(r["label"] == l for r in rows) for l in spec.label_names}  # seq2seq: none


def label_name(label: Any) -> str | None:
    """A row's label as a label name: a string as it is, an integer id as its digits (Hugging Face exports class ids:
    0 is the label "0"); anything else (a list, a float, true) is no name."""
    if isinstance(label, int) and not isinstance(label, bool):
        return str(label)
    return label if isinstance(label, str) else None


def check_labels(rows: list[dict[str, Any]], spec: TaskSpec, path: Path | str) -> None:
    """Every row has a known label (classification) or a non-empty target (seq2seq): file:line errors."""
    if spec.target:
        for row in rows:
            if not isinstance(row.get(spec.target.name), str) or not row[spec.target.name].strip():
                raise DistillError(f"{path}:{row.get('_line', '?')}: missing or empty field '{spec.target.name}'")
        return
    known = set(spec.label_names)
    for row in rows:
        label = row.get("label")
        if label_name(label) not in known:  # a list or dict label is unknown too (and unhashable)
            raise DistillError(
                f"{path}:{row.get('_line', '?')}: unknown label {label!r} "
                f"({spec._labels_from}: {', '.join(spec.label_names)})"
            )


def load_task(task_dir: str | Path, quiet: bool = False) -> Task:
    root = Path(task_dir)
    spec_path = root / "task.yaml"
    if not root.is_dir():
        parent = root.parent
        there = sorted(d.name for d in parent.iterdir() if (d / "test.jsonl").is_file()) if parent.is_dir() else []
        known = f"tasks in {parent}: {', '.join(there)}" if there else "a task is a folder with JSONL splits"
        raise DistillError(f"{root}: unknown task (no such folder; {known}; add one with `distill add-task`)")
    spec = load_yaml_model(spec_path, TaskSpec) if spec_path.is_file() else infer_spec(root, quiet)
    if not spec.name:
        spec.name = root.name
    return Task(root, spec)


_NOTICED: set[str] = set()


def notice(root: Path, text: str, quiet: bool) -> None:
    """The inferred-spec notice on stderr, once per folder and process (a stage loads its task more than once)."""
    if not quiet and str(root.resolve()) not in _NOTICED:
        _NOTICED.add(str(root.resolve()))
        print(f"{root}: no task.yaml, {text}", file=sys.stderr)


def describe_examples(texts: list[str]) -> tuple[str, str, str]:
    """(what one example is, its display name, its form) from real rows: questions, sentences or passages."""
    texts = [t.strip().strip('"').strip() for t in texts if t.strip()]
    if not texts:
        return "a short text", "Text", "any"
    if sum(t.endswith("?") for t in texts) >= 0.6 * len(texts):
        return "a question", "Question", "question"
    words = sorted(len(t.split()) for t in texts)[len(texts) // 2]
    sentences = sorted(len(re.findall(r"[.!?](\s|$)", t)) for t in texts)[len(texts) // 2]
    if words <= 35 and sentences <= 1:
        return "a single sentence", "Sentence", "any"
    return (
        ("a short text of a few sentences", "Text", "any")
        if words <= 80
        else ("a passage of several sentences", "Passage", "any")
    )


def infer_spec(root: Path, quiet: bool = False) -> TaskSpec:
    """A spec for a folder with no task.yaml: kind from the row keys, what one example is (a question, a sentence, a
    passage) from the rows, labels in the order a DATASET.md card lists them (`Label names: `a`, `b``) or sorted,
    the card's first sentence as the task's description, and real examples in every generation prompt."""
    rows = read_jsonl(root / "fewshot.jsonl") + read_jsonl(root / "validation.jsonl")
    keys = set(rows[0]) if rows else set()
    if {"input", "target"} <= keys:
        return infer_seq2seq(root, rows, quiet)
    if {"text_a", "text_b"} <= keys:
        (a, _, form_a), (b, _, form_b) = (
            describe_examples([str(r.get(k, "")) for r in rows]) for k in ("text_a", "text_b")
        )
        fields = [
            FieldSpec(name="text_a", display="Text A", description=f"a first text, {a}", form=form_a),
            FieldSpec(name="text_b", display="Text B", description=f"a second text about the first, {b}", form=form_b),
        ]
        unit = "pair of texts"
    elif "text" in keys:
        what, display, form = describe_examples([str(r.get("text", "")) for r in rows])
        fields = [FieldSpec(name="text", display=display, description=what, form=form)]
        unit = what.removeprefix("a ").removeprefix("an ")
    else:
        raise DistillError(
            f"{root}/task.yaml: file not found, and rows with keys {sorted(keys)} are neither "
            "text/label nor text_a/text_b/label: write a task.yaml (see data/tasks/sst2/task.yaml)"
        )
    card = (root / "DATASET.md").read_text(errors="replace") if (root / "DATASET.md").is_file() else ""
    listed = re.search(r"^Label names?:(.*)$", card, re.M)
    names = re.findall(r"`([^`]+)`", listed.group(1)) if listed else []
    seen = sorted({label_name(r.get("label")) for r in rows} - {None}, key=_label_order)
    from_card = bool(names) and set(seen) <= set(names)
    names = names if from_card else seen
    about = next((l.strip() for l in card.splitlines()[1:] if l.strip() and not l.startswith(("#", "|", "-"))), "")
    first = about.split(". ")[0]
    sentence = first if first.endswith(("?", "!")) else first.rstrip(".") + "."
    about = sentence.rstrip(".!?")
    if about:
        fields[-1].description += f" (the data: {about[0].lower() + about[1:]})"
    words = [n.replace("_", " ") for n in names]
    labels = [
        LabelSpec(
            name=n,
            verbalizer=w if w != n else None,
            description=f"It must clearly belong to the label '{w}', like the examples of '{w}' above.",
        )
        for n, w in zip(names, words)
    ]
    notice(
        root,
        f"using an inferred spec ({'text pair' if len(fields) == 2 else fields[0].description}, labels "
        f"{', '.join(names)}); a task.yaml with label descriptions gives the teacher better prompts "
        f"(`distill add-task` writes one to edit)",
        quiet,
    )
    spec = TaskSpec(
        kind="pair" if len(fields) == 2 else "single",
        fields=fields,
        labels=labels,
        answer_name="Label",
        instruction=(f"{sentence} " if about else "") + f"Label each {unit} as one of: {', '.join(words)}.",
        demos_per_prompt=3,
    )
    spec._labels_from = (
        "labels listed in DATASET.md, no task.yaml"
        if from_card
        else "labels inferred from fewshot.jsonl and validation.jsonl, no task.yaml"
    )
    return spec


def _label_order(name: str) -> tuple:
    """Integer ids in numeric order (2 before 10: id order is label order), then other names alphabetically."""
    return (0, int(name), "") if re.fullmatch(r"-?\d+", name) else (1, 0, name)


def infer_seq2seq(root: Path, rows: list[dict], quiet: bool) -> TaskSpec:
    """input/target rows: numeric answers are checked numerically; an `equation` key is shown and trained on."""
    # arith._NUMBER's pattern, written here so that tasks.py (read by every stage) imports no method module
    numeric = all(re.fullmatch(r"-?\d[\d,]*(\.\d+)?|-?\.\d+", str(r.get("target", "")).strip()) for r in rows)
    equation = "equation" if all("equation" in r for r in rows) else None
    what, _, form = describe_examples([str(r.get("input", "")) for r in rows])
    notice(
        root,
        f"using an inferred seq2seq spec (input -> target, {'numeric' if numeric else 'exact'} answer check); "
        "`distill add-task` writes one to edit",
        quiet,
    )
    instruction = (
        "Solve each problem. Write one equation that uses the problem's numbers with + - * / and parentheses, "
        "then its answer."
        if equation
        else "Answer each input."
    )
    return TaskSpec(
        kind="seq2seq",
        instruction=instruction,
        fields=[FieldSpec(name="input", display="Problem" if equation else "Input", description=what, form=form)],
        target=TargetSpec(equation=equation, check="numeric" if numeric else "exact"),
        demos_per_prompt=3,
        max_new_tokens=128,
    )


def add_task(
    src: str | Path, dest_root: str | Path = "data/tasks", name: str | None = None, force: bool = False
) -> Path:
    """Copy a task folder into `dest_root/<name>/` with a task.yaml (the folder's own, or an inferred one to edit),
    after every split has been read and checked (file:line errors; nothing is written on any error). A folder
    without unlabeled.jsonl gets an empty one."""
    import shutil

    import yaml

    from distill.core.sections import TASK_NAME

    src = Path(src)
    name = name or src.resolve().name
    if not re.fullmatch(TASK_NAME, name):  # `--name ../../x` or `/abs` would write outside dest_root
        raise DistillError(
            f"--name: {name!r} is not a plain folder name (letters, digits, '.', '_', '-'; no path): "
            f"a task is a folder directly under {dest_root}"
        )
    task = load_task(src, quiet=True)  # the spec inferred here is written out as task.yaml: no notice
    # No unlabelled text is a task too (ZeroGen's case: labels and an LLM): it gets an empty unlabeled.jsonl, the file
    # dvc.yaml declares, and `method: auto` reads as "no pool"
    no_pool = not task.path("unlabeled").exists()
    for split in SPLITS:
        if not (split == "unlabeled" and no_pool):
            task.load(split)
    dest = Path(dest_root) / name
    if dest.exists() and not force:
        raise DistillError(f"{dest}: already exists (pass --force to replace it)")
    with atomic_dir(dest) as tmp:
        for f in [*(f"{split}.jsonl" for split in SPLITS), "DATASET.md", "task.yaml"]:
            if (src / f).is_file():
                shutil.copy2(src / f, tmp / f)
        if no_pool:
            (tmp / "unlabeled.jsonl").touch()
        if not (src / "task.yaml").is_file():
            spec = task.spec.model_dump(exclude={"name"}, exclude_none=True)
            (tmp / "task.yaml").write_text(
                f"# Inferred by `distill add-task` from {src}: edit the instruction and the label\n"
                "# descriptions (the teacher reads them) before generating data.\n"
                + yaml.safe_dump(spec, sort_keys=False, allow_unicode=True)
            )
    if no_pool:
        print(
            f"{src}: no unlabeled.jsonl, so {dest / 'unlabeled.jsonl'} is empty: `method: auto` runs zerogen",
            file=sys.stderr,
        )
    return dest

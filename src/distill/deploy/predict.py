"""`distill predict MODEL INPUT`: label a JSONL or CSV file with a trained classification student.

MODEL is a student folder (models/student), `models:/<name>@<alias>`, `models:/<name>/<version>` or
`runs:/<run_id>/student` in the project's MLflow store (distill.tracking.tracking_uri()); from MLflow only the logged
model's "student" artifact (the student folder) is downloaded, into a temporary folder deleted after loading.
A seq2seq task's student (a generator: it writes answers, it has no label probabilities) is refused with one line.

The file is read lazily, `--batch-size` rows at a time, and each batch is written before the next is read, so memory
stays flat whatever the file's size. Each output row: the input's `id` (else its 1-based `line`), the predicted
`label`, its probability `score` and every label's probability. Rows that carry a `label` (the key every
classification task's rows use) are scored too: `accuracy 0.8257 (720 of 872 labelled rows)` on stderr at the end.
Bad input stops with one `file:line` line (exit 2, via cli.main) and leaves no output file; to stdout, what was
written before the bad row stays written.
"""

from __future__ import annotations

import csv
import itertools
import json
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, TextIO

import click

from distill.deploy.models import fetch_student, load_classifier
from distill.core.io import JSON_TYPES, MAX_LINE_BYTES, DistillError, atomic_path, iter_jsonl, iter_lines
from distill.core.tasks import label_name

if TYPE_CHECKING:
    from distill.students.model import Student

FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv"}
LABEL_KEY = "label"  # classification rows' gold label (TaskSpec.answer_keys); distill.json does not store it


# -- reading ----------------------------------------------------------------------------------------
def input_format(path: Path, chosen: str | None) -> str:
    if chosen:
        return chosen
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DistillError(f"{path}: unknown input format '{path.suffix}' (.jsonl or .csv; or pass --input-format)")
    return fmt


def _csv(path: Path, fields: list[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    csv.field_size_limit(max(csv.field_size_limit(), MAX_LINE_BYTES))  # a long review is a row, not an error
    reader = csv.reader(text for _, text in iter_lines(path))
    try:
        header = next(reader, None)
        if header is None:
            return
        missing = [f for f in fields if f not in header]
        if missing:
            raise DistillError(
                f"{path}:1: no column '{missing[0]}' (the student reads: {', '.join(fields)}; "
                f"the header has: {', '.join(header)})"
            )
        while True:
            start = reader.line_num + 1  # a quoted cell may span lines: a row is named by its first
            record = next(reader, None)
            if record is None:
                return
            if not any(cell.strip() for cell in record):
                continue
            if len(record) > len(header):
                raise DistillError(
                    f"{path}:{start}: {len(record)} cells, the header has {len(header)} (an unquoted comma?)"
                )
            yield start, dict(zip(header, record))
    except csv.Error as e:
        raise DistillError(f"{path}:{reader.line_num}: malformed CSV ({e})") from None


def read_rows(path: str | Path, fmt: str, fields: list[str]) -> Iterator[dict[str, Any]]:
    """The file's rows, lazily, each checked to carry the student's text fields and tagged with its `_line`."""
    path = Path(path)
    rows = _csv(path, fields) if fmt == "csv" else iter_jsonl(path)
    n = 0
    for lineno, row in rows:
        for f in fields:
            value = row.get(f)
            if f not in row:
                raise DistillError(f"{path}:{lineno}: missing field '{f}' (the student reads: {', '.join(fields)})")
            if not isinstance(value, str):
                raise DistillError(
                    f"{path}:{lineno}: field '{f}' is {JSON_TYPES.get(type(value), 'not text')}, not text"
                )
            if not value.strip():
                raise DistillError(f"{path}:{lineno}: empty field '{f}'")
        row["_line"] = lineno
        n += 1
        yield row
    if not n:
        raise DistillError(f"{path}: no rows")


# -- predicting ---------------------------------------------------------------------------------------
def batched(rows: Iterable[Any], size: int) -> Iterator[list[Any]]:
    it = iter(rows)
    while batch := list(itertools.islice(it, size)):
        yield batch


def predict_rows(
    student: Student, rows: Iterable[dict[str, Any]], batch_size: int = 64
) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(row, {label, score, probs}) per row, in order: `batch_size` rows are read, then predicted in one forward
    pass, before the next are read (the loop `distill predict` runs; pure, for benchmarks)."""
    labels = student.labels
    for batch in batched(rows, batch_size):
        for row, p in zip(batch, student.proba(batch, batch_size).tolist()):
            best = max(range(len(p)), key=p.__getitem__)
            yield row, {"label": labels[best], "score": p[best], "probs": dict(zip(labels, p))}


class Writer:
    """Predictions as JSONL ({id|line, label, score, probs}) or CSV (id|line, label, score, p_<label>...)."""

    def __init__(self, f: TextIO, fmt: str, labels: list[str]):
        self.f, self.fmt, self.labels = f, fmt, labels
        self.csv = csv.writer(f, lineterminator="\n") if fmt == "csv" else None
        self.key: str | None = None  # CSV: the first row decides between an id and a line column

    def write(self, row: dict[str, Any], pred: dict[str, Any]) -> None:
        probs = {k: round(v, 6) for k, v in pred["probs"].items()}
        if self.csv is None:
            key = "id" if "id" in row else "line"
            out = {
                key: row.get("id", row["_line"]),
                "label": pred["label"],
                "score": probs[pred["label"]],
                "probs": probs,
            }
            self.f.write(json.dumps(out, ensure_ascii=False) + "\n")
            return
        if self.key is None:
            self.key = "id" if "id" in row else "line"
            self.csv.writerow([self.key, "label", "score", *(f"p_{label}" for label in self.labels)])
        ident = row.get("id", "") if self.key == "id" else row["_line"]
        self.csv.writerow([ident, pred["label"], probs[pred["label"]], *(probs[label] for label in self.labels)])


def run(
    student: Student, input_path: Path, in_fmt: str, f: TextIO, out_fmt: str, batch_size: int, progress: bool
) -> dict[str, Any]:
    """Predict every row of `input_path` into `f`; returns the counts (rows, labelled, correct, unknown labels)."""
    from tqdm import tqdm

    writer = Writer(f, out_fmt, student.labels)
    stats: dict[str, Any] = {"rows": 0, "labelled": 0, "correct": 0, "unknown": set()}
    known = set(student.labels)
    with tqdm(desc="predict", unit=" rows", file=sys.stderr, disable=not progress) as bar:
        for row, pred in predict_rows(student, read_rows(input_path, in_fmt, student.fields), batch_size):
            writer.write(row, pred)
            gold = label_name(row.get(LABEL_KEY))
            if gold not in (None, ""):  # CSV: an empty label cell is an unlabelled row
                stats["labelled"] += 1
                stats["correct"] += gold == pred["label"]
                if gold not in known:
                    stats["unknown"].add(gold)
            stats["rows"] += 1
            if stats["rows"] % batch_size == 0:  # a batch is done: let a reader of stdout see it now
                f.flush()
                bar.update(batch_size)
        bar.update(stats["rows"] - bar.n)
    return stats


@click.command(
    "predict",
    help="Label a JSONL or CSV file with a trained student. MODEL: a student folder "
    "(models/student), models:/<name>@<alias> (e.g. models:/distill-sst2@champion), "
    "models:/<name>/<version> or runs:/<run_id>/student. Every INPUT row (JSONL or CSV) needs the "
    "student's text fields; an `id` is kept (else the line number), and a `label` column is scored "
    "(accuracy on stderr). Classification students only.",
)
@click.argument("model")
@click.argument("input_path", metavar="INPUT")
@click.option("--out", "-o", default="-", show_default=True, help="file to write (atomically), - for stdout")
@click.option(
    "--format",
    "out_fmt",
    type=click.Choice(["jsonl", "csv"]),
    default=None,
    help="output format [default: from --out's extension, else jsonl]",
)
@click.option(
    "--input-format",
    "in_fmt",
    type=click.Choice(["jsonl", "csv"]),
    default=None,
    help="input format [default: from INPUT's extension]",
)
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(1), help="rows per forward pass")
@click.option("--device", default="auto", show_default=True, help="auto (the GPU when torch sees one) | cpu | cuda[:N]")
@click.option("--quiet", "-q", is_flag=True, help="no progress bar, no summary line (accuracy is still printed)")
def command(model, input_path, out, out_fmt, in_fmt, batch_size, device, quiet):
    src = Path(input_path)
    if not src.is_file():
        raise DistillError(f"{src}: file not found")
    in_fmt = input_format(src, in_fmt)
    out_fmt = out_fmt or ("csv" if out != "-" and Path(out).suffix.lower() == ".csv" else "jsonl")
    from distill.core.devices import resolve_device

    device = resolve_device(device, "--device")
    with tempfile.TemporaryDirectory(prefix="distill-predict-") as tmp:  # an MLflow download lives only until loaded
        student = load_classifier(fetch_student(model, Path(tmp), "distill predict"), model, "distill predict", device)
    progress = not quiet and sys.stderr.isatty()
    if out == "-":
        stdout = click.get_text_stream("stdout", encoding="utf-8")
        stats = run(student, src, in_fmt, stdout, out_fmt, batch_size, progress)
        stdout.flush()
    else:
        with atomic_path(out) as tmp_out, tmp_out.open("w", encoding="utf-8", newline="") as f:
            stats = run(student, src, in_fmt, f, out_fmt, batch_size, progress)
        if not quiet:
            click.echo(f"predict: {stats['rows']} rows -> {out}", err=True)
    if stats["labelled"]:
        unknown = sorted(stats["unknown"])
        note = (
            f" ({len(unknown)} label(s) the student does not know: {', '.join(map(repr, unknown[:5]))}; "
            f"it knows: {', '.join(student.labels)})"
            if unknown
            else ""
        )
        click.echo(
            f"accuracy {stats['correct'] / stats['labelled']:.4f} ({stats['correct']} of {stats['labelled']} labelled rows)"
            f"{note}",
            err=True,
        )

"""Test rows must not reach training: the rules that find a split's or a training set's copies of test rows, and
repeated row ids.

Two rows are the same example when their text fields match with case, Unicode width forms and all whitespace
ignored: "Great film ." in test.jsonl and "great film." from the teacher are one text. Real splits that repeat a test
row are reported (check_task); generated and pseudo-labelled copies are dropped from training (assemble).
"""

from __future__ import annotations

import json
import unicodedata
from typing import Any, Iterable

from distill.core.tasks import SPLITS, TaskSpec


def text_key(fields: Iterable[str], row: dict[str, Any]) -> tuple[str, ...]:
    """What makes two rows one example: each text field, NFKC-normalised, case-folded, with no whitespace at all
    (so tokenised "it 's great ." matches "It's great.")."""
    return tuple("".join(unicodedata.normalize("NFKC", str(row.get(f, ""))).casefold().split()) for f in fields)


def keys_of(spec: TaskSpec, test_rows: list[dict[str, Any]]) -> set[tuple[str, ...]]:
    return {text_key(spec.field_names, r) for r in test_rows}


def overlap_counts(spec: TaskSpec, splits: dict[str, list[dict[str, Any]]]) -> dict[str, int]:
    """Rows of every other split that repeat a test row: {split: count}."""
    keys = keys_of(spec, splits["test"])
    return {
        split: sum(text_key(spec.field_names, r) in keys for r in rows)
        for split, rows in splits.items()
        if split != "test"
    }


def duplicate_ids(rows: list[dict[str, Any]]) -> int:
    """Rows whose id an earlier row of the same split already has (1 and "1" differ, as they do in JSON)."""
    seen, dupes = set(), 0
    for r in rows:
        key = json.dumps(r.get("id"), sort_keys=True, default=str)  # any JSON value, hashable
        dupes += key in seen
        seen.add(key)
    return dupes


def split_report(spec: TaskSpec, splits: dict[str, list[dict[str, Any]]]) -> dict[str, int]:
    """check_task's metrics: `overlap.<split>` (rows repeating a test row) and `duplicate_ids.<split>`, every key
    present (0 included), so `dvc metrics diff` compares like with like."""
    report = {f"overlap.{split}": n for split, n in overlap_counts(spec, splits).items()}
    report.update({f"duplicate_ids.{split}": duplicate_ids(splits[split]) for split in SPLITS if split in splits})
    return report


def warnings(report: dict[str, int]) -> list[str]:
    """One line per problem found in `split_report`'s counts (none when every count is 0)."""
    lines = []
    overlap = [f"{n} {key.split('.', 1)[1]}" for key, n in report.items() if key.startswith("overlap.") and n]
    if overlap:
        lines.append(
            f"{', '.join(overlap)} row(s) repeat a test.jsonl row (case and whitespace ignored): test scores "
            "can be inflated; assemble drops such rows from the training set"
        )
    dupes = [
        f"{n} in {key.split('.', 1)[1]}.jsonl" for key, n in report.items() if key.startswith("duplicate_ids.") and n
    ]
    if dupes:
        lines.append(f"repeated row ids ({', '.join(dupes)}): outputs name rows by id; give each row its own")
    return lines


def drop_test_rows(
    spec: TaskSpec, rows: list[dict[str, Any]], test_rows: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], int]:
    """`rows` without those that repeat a test row, and how many were dropped."""
    keys = keys_of(spec, test_rows)
    kept = [r for r in rows if text_key(spec.field_names, r) not in keys]
    return kept, len(rows) - len(kept)

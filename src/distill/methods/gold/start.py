"""Stage `gold_start`: GOLD's iteration 0, an empty data set and no feedback (iteration 1 builds on it by path)."""

from __future__ import annotations

from distill.core.io import atomic_dir, write_json, write_jsonl


def run(out_dir: str) -> None:
    with atomic_dir(out_dir) as tmp:
        write_jsonl(tmp / "data.jsonl", [])
        write_json(tmp / "feedback.json", [])

"""How many SVAMP test problems have their source problem in the training-side files (unlabeled, validation, fewshot)?

SVAMP's 1000 problems are variations of ASDiv-A problems, and the train split of the `mawps-asdiv-a_svamp` setting
(where unlabeled/validation/fewshot come from) holds ASDiv-A: a variation usually keeps its source's scene-setting
sentences ("Tiffany was collecting cans for recycling.") and changes the numbers or the question. No two inputs
are equal, so `distill check-task` reports 0 overlap; this counts the near copies it cannot see.

A test problem counts as matched when one of its body sentences (every sentence but the last, the question) is a
sentence of a training-side problem, compared after normalising: lower-cased, tokenised spacing undone
("marco 's" = "marco's", "pounds ." = "pounds."), punctuation dropped, whitespace collapsed. `exact` compares the
sentences as they are; `numbers masked` also replaces every number by N (the variation changed the numbers).
The result is the SVAMP section of data/tasks/svamp/DATASET.md.

    .venv/bin/python benchmarks/svamp_overlap.py [--show 5]
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

TASK = Path(__file__).resolve().parents[1] / "data" / "tasks" / "svamp"


def normalise(sentence: str, mask_numbers: bool) -> str:
    s = sentence.lower()
    s = re.sub(r"\s+(?=[.,?!;:'])", "", s)  # "marco 's" -> "marco's", "pounds ." -> "pounds."
    if mask_numbers:
        s = re.sub(r"\d+(?:\.\d+)?", "N", s)
    s = re.sub(r"[^\w\s]", " ", s)
    return " ".join(s.split())


def sentences(text: str, mask_numbers: bool) -> list[str]:
    return [s for s in (normalise(p, mask_numbers) for p in re.split(r"(?<=[.?!])\s+", text)) if s]


def body(text: str, mask_numbers: bool) -> list[str]:
    return sentences(text, mask_numbers)[:-1]  # the last sentence is the question


def matched(test: list[dict], pool: list[dict], mask_numbers: bool) -> list[tuple[dict, str]]:
    """(test row, the first body sentence found in the pool) for each matched test problem."""
    known = {s for r in pool for s in sentences(r["input"], mask_numbers)}
    found = []
    for r in test:
        shared = [s for s in body(r["input"], mask_numbers) if s in known]
        if shared:
            found.append((r, shared[0]))
    return found


def read(split: str) -> list[dict]:
    return [json.loads(line) for line in (TASK / f"{split}.jsonl").read_text().splitlines() if line.strip()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--show", type=int, default=0, help="print this many matched test problems with their pool source")
    args = ap.parse_args()
    test = read("test")
    pools = {split: read(split) for split in ("unlabeled", "validation", "fewshot")}
    pools["any of the three"] = [r for rows in pools.values() for r in rows]
    print(f"{'pool':<18} {'exact':>6} {'numbers masked':>15}   (of {len(test)} test problems)")
    for name, pool in pools.items():
        print(f"{name:<18} {len(matched(test, pool, False)):>6} {len(matched(test, pool, True)):>15}")
    for mask in (False, True):
        for r, s in matched(test, pools["unlabeled"], mask)[: args.show]:
            source = next(p["input"] for p in pools["unlabeled"] if s in sentences(p["input"], mask))
            print(f"\n[{'masked' if mask else 'exact'}] test: {r['input']}\n  shared: {s}\n  unlabeled: {source}")


if __name__ == "__main__":
    main()

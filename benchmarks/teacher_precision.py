"""The embedded teacher in float32 vs bfloat16 on this CPU: speed and accuracy, to back `teacher.dtype: auto`.

    .venv/bin/python benchmarks/teacher_precision.py     # ~10 min on 2 cores; writes a block of docs/teacher_speed.md

Scoring: the pipeline's own label scoring (`synthesis.classify`: the default few-shot prompt, 4 demonstrations per
label, batch calibration) on validation.jsonl, rows/s and accuracy per precision, and how often the two precisions
pick the same label. Generation: tokens/s of LocalBackend.generate on the default ZeroGen prompts, batch 32, 48 new
tokens. The two precisions alternate (float32, bfloat16, float32, bfloat16 for generation), so both see the same load
on a shared machine. No cache: every answer is computed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

from distill.core.devices import (
    cpu_bf16_native,
)  # before teacher_speed: it imports the tests' conftest, which pins float32

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline import REPO, replace_block  # noqa: E402
from teacher_speed import generation_prompts, machine, ours  # noqa: E402

from distill.config import load_params  # noqa: E402
from distill.synthesis import classify  # noqa: E402
from distill.core.tasks import load_task  # noqa: E402
from distill.teachers import make_teacher  # noqa: E402
from distill.teachers.local import LocalBackend  # noqa: E402

DTYPES = ("float32", "bfloat16")


def scoring(task_name: str, tmp: Path) -> dict:
    task = load_task(REPO / "data" / "tasks" / task_name)
    val, fewshot = task.load("validation"), task.load("fewshot")
    out = {"task": task_name, "rows": len(val)}
    picks = {}
    for dt in DTYPES:
        tp = load_params(REPO / "params.yaml").teacher.model_copy(update={"dtype": dt, "device": "cpu"})
        teacher = make_teacher(tp, cache=tmp / f"{task_name}-{dt}.sqlite", progress=False)
        t0 = time.perf_counter()
        probs, _ = classify(teacher, task.spec, val, fewshot, tp, seed=0)
        out[f"{dt} rows/s"] = len(val) / (time.perf_counter() - t0)
        picks[dt] = [max(range(len(p)), key=p.__getitem__) for p in probs]
        out[f"{dt} acc"] = sum(task.spec.label_names[y] == r["label"] for y, r in zip(picks[dt], val)) / len(val)
    out["agreement"] = sum(a == b for a, b in zip(*picks.values())) / len(val)
    return out


def generation() -> dict:
    reqs, speed = None, {dt: [] for dt in DTYPES}
    backends = {dt: LocalBackend("smollm2-135m-instruct", device="cpu", dtype=dt) for dt in DTYPES}
    for _ in range(2):
        for dt, b in backends.items():
            reqs = reqs or generation_prompts(b, 0, 32)
            speed[dt].append(ours(b, reqs, 32))
    return {dt: max(v) for dt, v in speed.items()}  # the better of two passes: the first also warms up


def report(rows: list[dict], gen: dict) -> str:
    native = cpu_bf16_native()
    lines = [
        f"Measured {time.strftime('%Y-%m-%d %H:%M')} on {machine()}; CPU bf16 instructions: "
        f"{'yes' if native else 'no'} (`teacher.dtype: auto` picks {'bfloat16' if native else 'float32'} here). Reproduce: `.venv/bin/python benchmarks/teacher_precision.py`.",
        "",
        "| task | validation rows | float32 rows/s | bfloat16 rows/s | speed-up | float32 acc | bfloat16 acc | same label |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['task']} | {r['rows']} | {r['float32 rows/s']:.1f} | {r['bfloat16 rows/s']:.1f} | "
            f"{r['bfloat16 rows/s'] / r['float32 rows/s']:.2f}x | {r['float32 acc']:.3f} | {r['bfloat16 acc']:.3f} | "
            f"{r['agreement']:.1%} |"
        )
    lines += [
        "",
        "| generation (ZeroGen default prompts, batch 32) | float32 tok/s | bfloat16 tok/s | speed-up |",
        "|---|---|---|---|",
        f"| sst2 | {gen['float32']:.1f} | {gen['bfloat16']:.1f} | {gen['bfloat16'] / gen['float32']:.2f}x |",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", nargs="+", default=["sst2", "ag_news"])
    ap.add_argument("--out", default=str(REPO / "docs" / "teacher_speed.md"))
    args = ap.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:  # a fresh cache: every answer computed
        rows = [scoring(t, Path(tmp)) for t in args.tasks]
    replace_block(Path(args.out), "precision", report(rows, generation()))
    print(Path(args.out).read_text().split("<!-- precision:begin -->")[1].split("<!-- precision:end -->")[0])


if __name__ == "__main__":
    main()

"""Stage `prompts`: task spec + fewshot/unlabeled rows -> one generation request per sample to draw."""

from __future__ import annotations

from distill.config import Params
from distill.core.io import write_jsonl
from distill.kinds import kind_of
from distill.stages import checked_task, demos_per_prompt, inactive


def run(params: Params, task_dir: str, out: str) -> None:
    task = checked_task(task_dir)
    if inactive(params, "zerogen"):
        write_jsonl(out, [])
        return
    spec = task.spec
    demos = demos_per_prompt(params, spec)  # task.yaml wins
    fewshot = task.load("fewshot") if demos else []
    rows, what = kind_of(spec).requests(params, task, fewshot, demos)  # label-conditioned, or worked examples
    n = write_jsonl(out, rows)
    print(f"prompts: wrote {n} requests ({what}) to {out}")

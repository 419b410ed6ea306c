"""Stage `generate`: the teacher writes one sample per request; cut, filter, check (a label with the teacher's own
classifier where generate.label_filter asks; a seq2seq example by its own equation and answer).

Every LLM call goes through the cache, so a re-run with the same config makes no call and a killed run
resumes from its last finished batch.
"""

from __future__ import annotations

from distill.config import Params
from distill.core.io import read_jsonl, write_json, write_jsonl
from distill.kinds import kind_of
from distill.kinds.synthesis import synthesize
from distill.stages import checked_task, inactive
from distill.synthesis import llm_metrics
from distill.core.tasks import label_counts
from distill.teachers import make_teacher


def run(params: Params, task_dir: str, prompts_path: str, out: str, metrics_out: str) -> None:
    task = checked_task(task_dir)
    if inactive(params, "zerogen"):
        write_jsonl(out, [])
        return write_json(metrics_out, {"skipped": 1})
    kind = kind_of(task.spec)
    requests = read_jsonl(prompts_path, required=list(kind.request_keys))
    fewshot = kind.label_check_fewshot(params, task)  # validate inputs before any LLM call
    teacher = make_teacher(params.teacher)
    rows, counts = synthesize(kind, teacher, task.spec, params, requests, fewshot)
    write_jsonl(out, rows)
    metrics = {
        "requested": len(requests),
        "kept": len(rows),
        **counts,
        **label_counts(task.spec, rows),
        **llm_metrics(teacher),
    }
    write_json(metrics_out, metrics)
    print(f"generate: kept {len(rows)}/{len(requests)} {kind.samples}; {counts}; llm {teacher.stats.as_dict()}")

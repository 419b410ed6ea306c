"""Stage `generate`: the teacher writes one sample per request; cut, filter, optionally check labels.

Every LLM call goes through the cache, so a re-run with the same config makes no call and a killed run
resumes from its last finished batch.
"""

from __future__ import annotations

from distill.config import Params
from distill.io import read_jsonl, write_json, write_jsonl
from distill.stages import checked_task, inactive
from distill.synthesis import llm_metrics, synthesize, synthesize_examples
from distill.tasks import label_counts
from distill.teachers import make_teacher


def run(params: Params, task_dir: str, prompts_path: str, out: str, metrics_out: str) -> None:
    task = checked_task(task_dir)
    if inactive(params, "zerogen"):
        write_jsonl(out, [])
        return write_json(metrics_out, {"skipped": 1})
    requests = read_jsonl(prompts_path, required=["id"] if task.spec.seq2seq else ["id", "label"])
    if task.spec.seq2seq:  # examples are checked by their own equation and answer, not by a label classifier
        teacher = make_teacher(params.teacher)
        rows, counts = synthesize_examples(teacher, task.spec, params, requests)
        write_jsonl(out, rows)
        write_json(metrics_out, {"requested": len(requests), "kept": len(rows), **counts, **llm_metrics(teacher)})
        return print(f"generate: kept {len(rows)}/{len(requests)} examples; {counts}; llm {teacher.stats.as_dict()}")
    fewshot = (
        task.load("fewshot") if params.generate.label_filter != "none" else []
    )  # validate inputs before any LLM call
    teacher = make_teacher(params.teacher)
    rows, counts = synthesize(teacher, task.spec, params, requests, fewshot)
    write_jsonl(out, rows)
    metrics = {
        "requested": len(requests),
        "kept": len(rows),
        **counts,
        **label_counts(task.spec, rows),
        **llm_metrics(teacher),
    }
    write_json(metrics_out, metrics)
    print(f"generate: kept {len(rows)}/{len(requests)} samples; {counts}; llm {teacher.stats.as_dict()}")

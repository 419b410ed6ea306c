"""Stage `generate`: the teacher writes one sample per request; cut, filter, optionally check labels.

Every LLM call goes through the cache, so a re-run with the same config makes no call and a killed run
resumes from its last finished batch.
"""
from __future__ import annotations

from dataclasses import asdict

from distill.config import Params
from distill.io import read_jsonl, write_json, write_jsonl
from distill.methods.fewshot import pick_demos, score_requests, scoring_prefix, teacher_probs
from distill.methods.zerogen import filter_samples
from distill.tasks import load_task
from distill.teachers import Decoding, GenRequest, make_teacher


def run(params: Params, task_dir: str, prompts_path: str, out: str, metrics_out: str) -> None:
    task = load_task(task_dir)
    spec, g = task.spec, params.generate
    requests = read_jsonl(prompts_path, required=["id", "label"])
    fewshot = task.load("fewshot") if g.label_filter != "none" else []  # validate all inputs before any LLM call
    teacher = make_teacher(params.teacher)
    decoding = Decoding(max_new_tokens=g.max_new_tokens, temperature=g.temperature, top_p=g.top_p, top_k=g.top_k)
    answers = teacher.generate(
        [GenRequest(messages=tuple(map(tuple, r["messages"])), prefix=r["prefix"], seed=r["seed"]) for r in requests],
        decoding, params.teacher.batch_size,
    )
    context_field = spec.fields[0].name if spec.kind == "pair" else None
    text_field = spec.fields[-1].name
    samples = []
    for r, a in zip(requests, answers):
        s = {"id": r["id"], "label": r["label"], "source": "llm_gen", "round": 0}
        if context_field:
            s[context_field] = r["context"]
        s["meta"] = {"raw": a.text, "prompt_id": r["prompt_id"], "template_hash": r["template_hash"],
                     "model": teacher.backend.model_id, "decoding": asdict(decoding), "finish": a.finish}
        samples.append(s)
    kept, rejected = filter_samples(samples, text_field, g.min_words, g.max_words, context_field)

    # The small teacher follows the requested label only ~70% of the time: check with its own classifier.
    rejected["label_disagree"] = relabelled = 0
    if g.label_filter != "none" and kept:
        prefix = scoring_prefix(spec, pick_demos(spec, fewshot, params.teacher.shots_per_label, params.seed), params.teacher.max_text_chars)
        scores = teacher.score(score_requests(spec, kept, prefix, params.teacher.max_text_chars), params.teacher.score_batch_size, desc="check labels")
        checked = []
        for s, probs in zip(kept, teacher_probs(scores, params.teacher.calibration)):
            s["meta"]["teacher_probs"] = dict(zip(spec.label_names, [round(p, 5) for p in probs]))
            best = spec.label_names[max(range(len(probs)), key=probs.__getitem__)]
            if best != s["label"]:
                if g.label_filter == "agree":
                    rejected["label_disagree"] += 1
                    continue
                s["meta"]["requested_label"], s["label"] = s["label"], best
                relabelled += 1
            checked.append(s)
        kept = checked

    rows = [{"id": s["id"], **{f: s[f] for f in spec.field_names}, **{k: s[k] for k in ("label", "source", "round", "meta")}} for s in kept]
    write_jsonl(out, rows)
    per_label = {f"kept.{l}": sum(r["label"] == l for r in rows) for l in spec.label_names}
    metrics = {"requested": len(requests), "kept": len(rows), "relabelled": relabelled,
               **{f"rejected.{k}": v for k, v in rejected.items()}, **per_label,
               **{f"llm.{k}": v for k, v in teacher.stats.as_dict().items()}}
    write_json(metrics_out, metrics)
    print(f"generate: kept {len(rows)}/{len(requests)} samples; rejected {rejected}; llm {teacher.stats.as_dict()}")

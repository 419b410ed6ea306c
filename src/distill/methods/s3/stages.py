"""S3 stages: `s3_seed` (rationales, then rationale-conditioned seed data) and `s3_round@k`.

Round k: train a fresh student on seed ∪ additions so far, find its errors on the real validation.jsonl
(the small gold set: the `s3.error_fraction` of it that `error_split` assigns to mining; the other part stays unseen
for the evaluate stage), ask the teacher for one new example per error with the gold label (T_mis), add them.
The gold examples themselves never enter the training data, and no S3 stage reads test.jsonl.
Each step writes its own folder `<s3 dir>/round_k/`: data.jsonl (all data so far) and metrics.json.
"""

from __future__ import annotations

from pathlib import Path

from distill.config import Params
from distill.core.io import atomic_dir, read_jsonl, write_json, write_jsonl
from distill.methods.s3.algorithm import (
    error_split,
    extrapolation_requests,
    parse_rationales,
    rationale_messages,
    seed_requests,
)
from distill.prompting.generation import make_request, template_hash
from distill.kinds import CLASSIFICATION, SEQ2SEQ, kind_of
from distill.kinds.synthesis import synthesize
from distill.stages import checked_task, demos_per_prompt, inactive
from distill.synthesis import llm_metrics, seen_keys
from distill.core.tasks import label_counts
from distill.teachers import Decoding, GenRequest, make_teacher


def _write(out_dir: str, metrics_out: str, data: list[dict], metrics: dict, extra: dict | None = None) -> None:
    with atomic_dir(out_dir) as tmp:
        write_jsonl(tmp / "data.jsonl", data)
        write_json(tmp / "metrics.json", metrics)
        for name, obj in (extra or {}).items():
            write_json(tmp / name, obj)
    write_json(metrics_out, metrics)


def seed(params: Params, task_dir: str, out_dir: str, metrics_out: str) -> None:
    if inactive(params, "s3"):
        return _write(out_dir, metrics_out, [], {"skipped": 1})
    task = checked_task(task_dir)
    fewshot = task.load("fewshot")  # validate inputs before any LLM call (used by the label check)
    return SEEDS[kind_of(task.spec).name](params, task, fewshot, out_dir, metrics_out)


def classification_seed(params: Params, task, fewshot: list[dict], out_dir: str, metrics_out: str) -> None:
    """Rationales per label (single texts), then label-conditioned seed requests that show them."""
    sp, spec = params.s3, task.spec
    contexts = [r[spec.fields[0].name] for r in task.load("unlabeled")] if spec.kind == "pair" else []
    teacher = make_teacher(params.teacher)
    thash = template_hash(spec, params.prompts.assistant_prefix) + "s"
    rationales: dict[str, list[str]] = {}
    if spec.kind == "single" and sp.n_rationales:  # explain-then-generate (single texts only, as in the paper)
        reqs = [
            make_request(
                thash,
                f"{thash}-ration-{l}-{j}",
                l,
                None,
                rationale_messages(spec, l, sp.n_rationales),
                "1.",
                params.seed,
            )
            for l in spec.label_names
            for j in range(2)
        ]
        answers = teacher.generate(
            [GenRequest(tuple(map(tuple, r["messages"])), r["prefix"], r["seed"]) for r in reqs],
            Decoding(max_new_tokens=160, temperature=0.9, top_p=0.9),  # the paper: temperature 0.9
            params.teacher.batch_size,
            desc="rationales",
        )
        raw: dict[str, list[str]] = {}
        for r, a in zip(reqs, answers):  # each answer continues the "1." its prompt was pre-filled with
            raw.setdefault(r["label"], []).append("1." + a.text)
        rationales = {label: parse_rationales("\n".join(texts), sp.n_rationales) for label, texts in raw.items()}
    requests = seed_requests(
        spec,
        sp.seed_per_label,
        rationales,
        sp.rationales_per_prompt,
        contexts,
        params.prompts.assistant_prefix,
        params.seed,
        thash,
    )
    rows, counts = synthesize(CLASSIFICATION, teacher, spec, params, requests, fewshot, "llm_gen", 0, desc="s3 seed")
    metrics = {
        "round": 0,
        "requested": len(requests),
        "added": len(rows),
        "total": len(rows),
        **counts,
        **label_counts(spec, rows),
        **llm_metrics(teacher),
    }
    _write(out_dir, metrics_out, rows, metrics, {"rationales.json": rationales})
    print(
        f"s3 seed: {len(rows)}/{len(requests)} samples kept; rationales per label: {[len(v) for v in rationales.values()]}"
    )


def seq2seq_seed(params: Params, task, fewshot: list[dict], out_dir: str, metrics_out: str) -> None:
    """Worked examples from real demos (rationales are a classification device)."""
    from distill.prompting import seq2seq

    spec = task.spec
    requests = seq2seq.build_requests(
        spec, params.s3.seed_per_label, fewshot, demos_per_prompt(params, spec), params.seed, "s3seed"
    )
    teacher = make_teacher(params.teacher)
    rows, counts = synthesize(SEQ2SEQ, teacher, spec, params, requests, fewshot, "llm_gen", 0, desc="s3 seed")
    metrics = {
        "round": 0,
        "requested": len(requests),
        "added": len(rows),
        "total": len(rows),
        **counts,
        **llm_metrics(teacher),
    }
    _write(out_dir, metrics_out, rows, metrics)
    print(f"s3 seed: {len(rows)}/{len(requests)} worked examples kept")


def round_(params: Params, task_dir: str, k: int, prev_dir: str, out_dir: str, metrics_out: str) -> None:
    if inactive(params, "s3"):
        return _write(out_dir, metrics_out, [], {"skipped": 1})
    # torch + transformers load here, not at import: under another method this stage is a ~0.5 s no-op.
    from distill.students.model import accuracy_of
    from distill.students.prior import start_encoder

    task, sp = checked_task(task_dir), params.s3
    spec = task.spec
    fields = spec.field_names
    fewshot, (gold, _) = task.load("fewshot"), error_split(task.load("validation"), fields, sp.error_fraction)
    data = read_jsonl(Path(prev_dir) / "data.jsonl")

    # 1. a fresh student on everything so far; 2. its errors on the small gold set
    kind = kind_of(spec)
    tp = start_encoder(kind.student_config(params.train), params.seed, spec, fewshot)  # the kind's, train.init's
    model, _ = kind.train(spec, data, tp, params.seed + k)
    correct = model.correct(gold)  # the gold label, or (seq2seq) the task's answer check
    errors = [g for g, c in zip(gold, correct) if not c]
    val_acc = accuracy_of(correct)
    if sp.max_extrapolations:
        errors = errors[: sp.max_extrapolations]

    # 3. one extrapolated example per error: the gold label (classification), or a worked problem that checks (seq2seq)
    teacher = make_teacher(params.teacher)
    seen = seen_keys(spec, data + gold)  # gold examples are extrapolated from, never copied into training
    requests, checked = EXTRAPOLATIONS[kind.name](params, spec, errors, fewshot, k)
    added, counts = synthesize(
        kind, teacher, spec, checked, requests, fewshot, "llm_extrapolated", k, seen, desc=f"s3 round {k}"
    )
    metrics = {
        "round": k,
        "val_accuracy": val_acc,
        "val_rows": len(gold),
        "errors": len(errors),
        "requested": len(requests),
        "added": len(added),
        "total": len(data) + len(added),
        **counts,
        **llm_metrics(teacher),
    }
    _write(out_dir, metrics_out, data + added, metrics)
    print(
        f"s3 round {k}: accuracy {val_acc:.4f} on the {len(gold)} mined validation rows, {len(errors)} errors -> "
        f"{len(added)} new examples"
    )


def classification_extrapolations(params: Params, spec, errors: list[dict], fewshot: list[dict], k: int):
    """T_mis: one request per error, for a new example of its gold label -> (requests, the params they are synthesized
    under: without the teacher's label check unless s3.check_extrapolations)."""
    thash = template_hash(spec, params.prompts.assistant_prefix) + "s"
    requests = extrapolation_requests(spec, errors, k, params.prompts.assistant_prefix, params.seed, thash)
    checked = (
        params
        if params.s3.check_extrapolations
        else params.model_copy(update={"generate": params.generate.model_copy(update={"label_filter": "none"})})
    )
    return requests, checked


def seq2seq_extrapolations(params: Params, spec, errors: list[dict], fewshot: list[dict], k: int):
    """One request per error for a similar worked problem, kept if it checks, like every example -> (requests, params)."""
    from distill.prompting import seq2seq

    requests = seq2seq.extrapolation_requests(
        spec, errors, fewshot, max(demos_per_prompt(params, spec) - 1, 0), k, params.seed
    )
    return requests, params


# each task kind's (kinds/) seed stage and T_mis requests
SEEDS = {"classification": classification_seed, "seq2seq": seq2seq_seed}
EXTRAPOLATIONS = {"classification": classification_extrapolations, "seq2seq": seq2seq_extrapolations}

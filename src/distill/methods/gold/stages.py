"""GOLD stage `gold_iter@k`, one DVC stage per iteration (iteration 0 is `gold_start`, methods/gold/start.py).

Iteration k: generate a training block and a 'significantly different' validation block with iteration
k-1's feedback as extra demonstrations; refresh the student on everything generated so far; score the
validation block by energy; keep the [ood_lo, ood_hi) band as the feedback of iteration k+1.
Everything iteration k produces lives in its own output folder, `<gold dir>/iter_k/`:
data.jsonl (all data so far), feedback.json, metrics.json and (cumulative refresh) student/.
"""

from __future__ import annotations

import json
from pathlib import Path

from distill.config import Params
from distill.core.io import atomic_dir, read_json, read_jsonl, write_json, write_jsonl
from distill.kinds import kind_of
from distill.prompting.generation import template_hash
from distill.stages import checked_task, inactive
from distill.kinds.synthesis import synthesize
from distill.synthesis import llm_metrics, seen_keys
from distill.core.tasks import label_counts
from distill.teachers import make_teacher


def _skip(out_dir: str, metrics_out: str) -> None:
    from distill.methods.gold.start import run as start

    start(out_dir)
    write_json(metrics_out, {"skipped": 1})


def iterate(params: Params, task_dir: str, k: int, prev_dir: str, out_dir: str, metrics_out: str) -> None:
    if inactive(params, "gold"):
        return _skip(out_dir, metrics_out)
    # torch + transformers load here, not at import: under another method this stage is a ~0.5 s no-op.
    from distill.methods.gold.algorithm import energy_stats, select_feedback
    from distill.students.model import load_student
    from distill.students.prior import start_encoder

    gp, task = params.gold, checked_task(task_dir)
    spec = task.spec
    fields = spec.field_names
    fewshot, validation = task.load("fewshot"), task.load("validation")  # validate inputs before any LLM call
    contexts = [r[spec.fields[0].name] for r in task.load("unlabeled")] if spec.kind == "pair" else []
    prev = Path(prev_dir)
    so_far = read_jsonl(prev / "data.jsonl")
    feedback = read_json(prev / "feedback.json")

    # 1. generate this iteration's blocks, with last iteration's feedback as extra demonstrations
    kind = kind_of(spec)
    teacher = make_teacher(params.teacher)
    seen = seen_keys(spec, so_far)
    requests = REQUESTS[kind.name](params, spec, k, fewshot, contexts, feedback)
    (new_train, c_train), (new_val, c_val) = (
        synthesize(
            kind,
            teacher,
            spec,
            params,
            [r for r in requests if r["block"] == block],
            fewshot,
            source,
            k,
            seen,
            desc=f"gold {k}: {block} block",
        )
        for block, source in (("train", "llm_gen"), ("val", "llm_val"))  # train first: the same calls, in order
    )
    data = so_far + new_train + new_val  # val blocks become training data too, as in the released code

    # 2. refresh the student on everything so far (cumulative: continue from the previous student)
    tp = start_encoder(kind.student_config(params.train), params.seed, spec, fewshot)  # the kind's, train.init's
    start = None
    if gp.refresh == "cumulative" and (prev / "student" / "distill.json").is_file():
        start = load_student(prev / "student")
    if data:
        model, _ = kind.train(spec, data, tp, params.seed + k, start=start, epochs=gp.refresh_epochs)
    else:  # nothing to train on yet: the energies come from the untrained student
        model = start or kind.new_student(spec, tp, params.seed + k)

    # 3. energy of the validation block under the refreshed student (token-level for seq2seq) -> next feedback
    energies = model.energies(new_val, gp.energy_T, gp.include_pad) if new_val else []
    for r, e in zip(new_val, energies):
        r["meta"]["energy"] = round(e, 5)
    next_feedback, keep, carried = [], fields + spec.answer_keys, 0
    for label in spec.label_names or [None]:  # per label; seq2seq: one group
        idx = [i for i, r in enumerate(new_val) if r.get("label") == label]
        if (
            not idx
        ):  # the block kept nothing here (a weak teacher's yield): this group's last feedback stays, so the loop
            old = [f for f in feedback if f.get("label") == label]  # goes on instead of starting again from none
            next_feedback, carried = next_feedback + old, carried + len(old)
            continue
        picked = select_feedback(
            [energies[i] for i in idx], gp.feedback, gp.n_feedback, gp.ood_lo, gp.ood_hi, params.seed + k
        )
        next_feedback += [
            {**{f: new_val[idx[j]][f] for f in keep}, "energy": energies[idx[j]], "id": new_val[idx[j]]["id"]}
            for j in picked
        ]

    metrics = {
        "iteration": k,
        "generated": len(new_train) + len(new_val),
        "total": len(data),
        "requested": len(requests),
        "val_accuracy": model.accuracy(validation),
        "feedback": len(next_feedback),
        "feedback_carried": carried,
        **energy_stats(energies),
        **{f"train_block.{n}": v for n, v in c_train.items()},
        **{f"val_block.{n}": v for n, v in c_val.items()},
        **label_counts(spec, data),
        **llm_metrics(teacher),
    }
    with atomic_dir(out_dir) as tmp:
        write_jsonl(tmp / "data.jsonl", data)
        write_json(tmp / "feedback.json", next_feedback)
        write_json(tmp / "metrics.json", metrics)
        if gp.refresh == "cumulative":
            model.save_pretrained(tmp / "student")
    write_json(metrics_out, metrics)
    _track(params, k, metrics, next_feedback)
    print(
        f"gold iteration {k}: +{metrics['generated']} samples (total {len(data)}), validation accuracy "
        f"{metrics['val_accuracy']:.4f}, energy mean {metrics.get('energy_mean', float('nan')):.3f}, feedback {len(next_feedback)}"
    )


def classification_requests(params: Params, spec, k: int, fewshot, contexts, feedback) -> list[dict]:
    """Label-conditioned requests for both blocks (methods/gold/algorithm.iteration_requests), each label's feedback
    shown beside its real examples."""
    from distill.methods.gold.algorithm import iteration_requests

    gp, target = params.gold, spec.fields[-1].name
    real = {l: [r[target] for r in fewshot if r["label"] == l] for l in spec.label_names}
    fb = {l: [f[target] for f in feedback if f["label"] == l] for l in spec.label_names}
    return iteration_requests(
        spec,
        k,
        gp.train_per_iter,
        gp.val_per_iter,
        real,
        contexts,
        fb,
        gp.real_demos,
        gp.feedback_ratio,
        params.prompts.assistant_prefix,
        params.seed,
        template_hash(spec, params.prompts.assistant_prefix) + "g",
    )


def seq2seq_requests(params: Params, spec, k: int, fewshot, contexts, feedback) -> list[dict]:
    """Worked-example requests for both blocks; the feedback examples join the real ones as further demos."""
    from distill.prompting import seq2seq

    gp = params.gold
    blocks = {
        b: seq2seq.build_requests(
            spec, n, fewshot, gp.real_demos, params.seed, f"gold{k}", feedback, gp.feedback_ratio, extra, b
        )
        for b, n, extra in (("train", gp.train_per_iter, ""), ("val", gp.val_per_iter, seq2seq.VAL_INSTRUCTION))
    }
    return blocks["train"] + blocks["val"]


# each task kind's (kinds/) requests of an iteration: rows with `block` "train" or "val"
REQUESTS = {"classification": classification_requests, "seq2seq": seq2seq_requests}


def _track(params: Params, k: int, metrics: dict, feedback: list[dict]) -> None:
    from distill.tracking import log_iteration_run

    log_iteration_run(
        params.register.experiment,
        f"gold-{params.task}-iter{k}",
        params.model_dump(),
        metrics,
        {"pipeline": "distill", "method": "gold", "task": params.task, "iteration": str(k)},
        {"feedback.json": json.dumps(feedback, indent=1, ensure_ascii=False)},
    )

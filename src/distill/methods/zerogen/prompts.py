"""Stage `prompts`: task spec + fewshot/unlabeled rows -> one generation request per sample to draw."""

from __future__ import annotations

from distill.config import Params
from distill.io import DistillError, write_jsonl
from distill.prompting.generation import build_requests
from distill.stages import checked_task, demos_per_prompt, inactive


def run(params: Params, task_dir: str, out: str) -> None:
    task = checked_task(task_dir)
    if inactive(params, "zerogen"):
        write_jsonl(out, [])
        return
    spec = task.spec
    demos = demos_per_prompt(params, spec)  # task.yaml wins
    fewshot = task.load("fewshot") if demos else []
    if spec.seq2seq:  # input + worked answer examples: n_per_label requests in all (there are no labels)
        from distill.prompting import seq2seq

        n = write_jsonl(
            out, seq2seq.build_requests(spec, params.generate.n_per_label, fewshot, demos, params.seed, "zerogen")
        )
        return print(f"prompts: wrote {n} requests ({demos} real examples in each) to {out}")
    contexts = []
    if spec.kind == "pair":  # condition on real first texts (premises), as ZeroGen does for NLI
        contexts = [r[spec.fields[0].name] for r in task.load("unlabeled")]
        if not contexts:
            raise DistillError(f"{task.path('unlabeled')}: pair tasks need unlabeled rows to condition on")
    rows = build_requests(
        spec,
        params.generate.n_per_label,
        fewshot,
        contexts,
        demos,
        params.prompts.assistant_prefix,
        params.seed,
    )
    n = write_jsonl(out, rows)
    print(f"prompts: wrote {n} requests ({params.generate.n_per_label} per label x {len(spec.labels)} labels) to {out}")

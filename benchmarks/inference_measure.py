"""One model of the inference benchmark (benchmarks/inference.py), measured in the process it runs in: that script
starts one child process per model (`--one MODEL`), so the peak RSS here is the model's own.

The models (MODELS: key -> the name the table gives it; LLM: the two that ask the teacher), and for one of them on one
task's test split: accuracy, rows/s at batch 64 after a warm-up batch, p50/p95 latency of single-row calls on distinct
rows, peak RSS, size on disk. The LLM rows are the embedded teacher as the evaluate stage scores it (or the labeller:
the teacher x LLKD's few-shot prior, its probe fitted once), on evaluate.capped's sample, with an empty LLM cache in
every phase; the students run as PyTorch fp32 or as their ONNX exports (onnxruntime, torch never imported).
"""

from __future__ import annotations

import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline import REPO  # noqa: E402

STUDENTS = {"student": "student MiniLM-L6", "mpnet": "student mpnet-base"}
MODELS = {
    "teacher": "LLM teacher (SmolLM2-135M-Instruct, few-shot)",
    "labeller": "labeller (teacher × mpnet few-shot probe)",
    "setfit": "SetFit on fewshot.jsonl (MiniLM-L6)",
    **{k + v: name for k, name in STUDENTS.items() for v in ("", "-onnx", "-int8")},
}
LLM = ("teacher", "labeller")


def sample_ids(n: int, cap: int | None) -> list[int]:
    """evaluate.capped's rule: at most `cap` of n rows, a uniform sample in file order (the same rows every run)."""
    return list(range(n)) if not cap or n <= cap else sorted(random.Random(0).sample(range(n), cap))


def folder_bytes(path: Path, skip: tuple[str, ...] = ()) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file() and p.name not in skip)


def peak_rss_mb() -> float:
    """This process's own peak RSS (Linux: VmHWM). Not ru_maxrss: exec keeps the forking parent's high-water mark."""
    status = Path("/proc/self/status").read_text().splitlines()
    return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024


def llm_model(key: str, params, spec, fewshot: list[dict], work: Path) -> tuple:
    """(probs(rows, batch), labels, facts, fresh(phase)) of the teacher or the labeller; fresh: an empty LLM cache."""
    import torch
    from distill.synthesis import classify
    from distill.teachers import LLMCache, make_teacher
    from distill.core.weights import dequantised, model_identity, resolve_model

    tp = params.teacher
    teacher = make_teacher(tp, cache=work / "warmup.sqlite", progress=False)
    scores = lambda rows: classify(teacher, spec, rows, fewshot, tp, params.seed)[0]  # noqa: E731
    gguf = resolve_model(tp.model)
    fp32 = f"GGUF; runs from a {folder_bytes(dequantised(gguf, model_identity(gguf))) / 2**20:.0f} MB float32 copy"
    facts = {
        "runtime": f"PyTorch {str(teacher.backend.dtype).removeprefix('torch.')}",
        "batch": tp.score_batch_size,
        "size_bytes": gguf.stat().st_size if gguf.is_file() else folder_bytes(gguf),
        "size_note": fp32 if gguf.is_file() else "",
        "stats": teacher.stats,
    }
    fresh = lambda phase: setattr(teacher, "cache", LLMCache(work / f"{phase}.sqlite"))  # noqa: E731
    if key == "teacher":
        return (lambda rows, batch: scores(rows)), spec.label_names, facts, fresh
    from distill.methods.auto import resolve
    from distill.methods.llkd.algorithm import with_prior
    from distill.methods.registry import method_of
    from distill.students.model import resolve_student

    params = resolve(params, REPO / "data" / "tasks" / spec.name)
    if params.method != "llkd" or params.llkd.fewshot_prior == "none":
        raise SystemExit(f"labeller: method {params.method}, llkd.fewshot_prior {params.llkd.fewshot_prior}: no prior")
    prior, weight = fitted_prior(params, spec, fewshot), params.llkd.prior_weight
    encoder = params.train.model if params.llkd.prior_model == "student" else params.llkd.prior_model
    facts["size_bytes"] += folder_bytes(resolve_student(encoder, "llkd.prior_model"))
    facts["size_note"] += f" + the probe's encoder ({params.llkd.prior_model})"
    facts["runtime"] += f" + {params.llkd.prior_model} probe"
    hook = method_of(params).labeller
    facts["check"] = lambda rows, got: float(
        (torch.tensor(hook(params, spec, fewshot, rows, scores(rows))) - torch.tensor(got)).abs().max()
    )
    return (
        (lambda rows, batch: with_prior(torch.tensor(scores(rows)), prior(rows), weight).numpy()),
        spec.label_names,
        facts,
        fresh,
    )


def fitted_prior(params, spec, fewshot: list[dict]):
    """students/prior.py's probe fitted once: rows -> its label distribution (the llkd hook refits it, reloading the
    encoder, on every call)."""
    from distill.students.prior import fit_reference

    return fit_reference(params, spec, fewshot)


def student_model(key: str, path: Path, threads: int) -> tuple:
    if key.endswith(("-onnx", "-int8")):  # onnxruntime + tokenizers alone: torch is never imported
        from distill.deploy.export import FP32, INT8, OnnxStudent

        int8 = key.endswith("-int8")
        m = OnnxStudent(path, int8=int8, threads=threads)
        size = folder_bytes(path, skip=(FP32 if int8 else INT8, "export_check.json"))
        return m.proba, m.labels, {"runtime": f"onnxruntime {'int8' if int8 else 'fp32'}", "size_bytes": size}, None
    import torch
    from distill.students.model import load_student

    torch.set_num_threads(threads)
    m = load_student(path)
    return (
        (lambda rows, batch: m.proba(rows, batch).numpy()),
        m.labels,
        {"runtime": "PyTorch fp32", "size_bytes": folder_bytes(path)},
        None,
    )


def measure(key: str, task: str, path: Path | None, args) -> dict:
    """One model's row (without provenance), in this process."""
    import numpy as np
    from distill.core.tasks import load_task

    load = os.getloadavg()[0]
    t = load_task(REPO / "data" / "tasks" / task, quiet=True)
    test = t.load("test")
    llm_rows = [test[i] for i in sample_ids(len(test), min(args.llm_rows, args.rows or args.llm_rows))]
    work = Path(tempfile.mkdtemp(prefix="bench-llm-cache-"))
    if key in LLM:
        import torch
        from distill.config import load_params

        torch.set_num_threads(args.threads)
        params = load_params(REPO / "params.yaml").model_copy(update={"task": task, "seed": args.seed})
        probs, labels, facts, fresh = llm_model(key, params, t.spec, t.load("fewshot"), work)
        rows, calls = llm_rows, min(args.latency_calls, len(test))  # distinct rows: a repeat would be a cache hit
    else:
        probs, labels, facts, fresh = student_model(key, path, args.threads)
        rows, calls = [test[i] for i in sample_ids(len(test), args.rows)], args.latency_calls
    fresh = fresh or (lambda phase: None)
    single = [test[i] for i in sample_ids(len(test), calls)]
    single = (single * -(-calls // len(single)))[:calls]
    fresh("warmup")  # the teacher's prefix KV and every model's first-call allocations
    probs(rows[: facts.get("batch", args.batch)], args.batch)
    for r in single[:3]:
        probs([r], 1)
    hits = facts["stats"].cache_hits if "stats" in facts else 0
    fresh("throughput")
    t0 = time.perf_counter()
    p = np.asarray(probs(rows, args.batch))
    seconds, ms = time.perf_counter() - t0, []
    fresh("latency")
    for r in single:
        t0 = time.perf_counter()
        probs([r], 1)
        ms.append(1000 * (time.perf_counter() - t0))
    acc = lambda p, rows: sum(labels[i] == r["label"] for i, r in zip(p.argmax(-1), rows)) / len(rows)  # noqa: E731
    row = {
        "task": task,
        "model": key,
        "accuracy": acc(p, rows),
        "accuracy_rows": len(rows),
        "n_test": len(test),
        "rows_per_s": len(rows) / seconds,
        "batch": args.batch,
        "latency_p50_ms": statistics.median(ms),
        "latency_p95_ms": statistics.quantiles(ms, n=20, method="inclusive")[-1] if len(ms) > 1 else ms[0],
        "latency_calls": len(ms),
        "load_avg_1m": load,
        **{k: v for k, v in facts.items() if k not in ("stats", "check")},
    }
    if key in LLM:
        row["llm_cache_hits"] = facts["stats"].cache_hits - hits  # in the timed phases: 0, every answer computed
        if "check" in facts:  # against the hook, on the throughput phase's teacher answers (cached: untimed)
            fresh("throughput")
            row["labeller_check_max_abs_diff"] = facts["check"](rows, p)
    else:
        p = np.asarray(probs(llm_rows, args.batch))
        row.update(accuracy_llm_sample=acc(p, llm_rows), llm_sample_rows=len(llm_rows))
    shutil.rmtree(work, ignore_errors=True)
    return {**row, "peak_rss_mb": peak_rss_mb()}

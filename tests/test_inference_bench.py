"""benchmarks/inference.py (issue 43) and its inference_measure.py, inference_report.py: the table refuses rows
without provenance, its ratios are the rows' own numbers, the LLM sample is evaluate's, and provenance params get `-S`
overrides as DVC applies them. No model is run."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))  # the benchmark scripts import each other by bare name

import inference  # noqa: E402
import inference_measure  # noqa: E402
import inference_report  # noqa: E402

PROV = {
    "commit": "a" * 40,
    "dirty": False,
    "params_sha256": "0" * 64,
    "overrides": {"task": "sst2"},
    "cpu_model": "AMD EPYC",
    "cpu_flags": ["avx2"],
    "threads": 2,
    "mlflow_run_id": None,
    "machine": "2 cores, 8 GiB",
    "python": "3.11.7",
    "torch": "2.13.0+cpu",
    "date": "2026-12-07",
    "load_avg_1m": 0.1,
}


def row(model: str, rps: float, accuracy: float = 0.9, **kw) -> dict:
    return {
        "task": "sst2",
        "model": model,
        "runtime": model,
        "accuracy": accuracy,
        "accuracy_rows": 872,
        "batch": 64,
        "rows_per_s": rps,
        "latency_p50_ms": 5.0,
        "latency_p95_ms": 7.0,
        "peak_rss_mb": 300.0,
        "size_bytes": 2**20,
        **PROV,
        **kw,
    }


def test_render_refuses_a_row_without_provenance():
    bare = {k: v for k, v in row("student", 100.0).items() if k != "params_sha256"}
    with pytest.raises(ValueError, match="no provenance: missing params_sha256"):
        inference_report.render([row("teacher", 4.0, batch=16), bare])


def test_ratios_are_over_the_teacher_and_over_the_pytorch_student():
    rows = [
        row("teacher", 4.0, accuracy=0.8, batch=16, accuracy_rows=256),
        row("student", 200.0),
        row("student-int8", 500.0),
        row("student", 100.0),
    ]  # the later student row replaces the first
    cells = [line.split(" | ") for line in inference_report.render(rows).splitlines() if line.startswith("| sst2")]
    by = {c[2]: c for c in cells}  # runtime column: the model key here
    assert [c[2] for c in cells] == ["teacher", "student", "student-int8"]
    assert by["teacher"][3] == "0.8000 (256-row sample)" and by["teacher"][5] == "4.0 (batch 16)"
    assert by["teacher"][6] == by["teacher"][7] == "–"
    assert by["student"][5:8] == ["100", "25.0×", "–"]
    assert by["student-int8"][5:8] == ["500", "125×", "5.0×"]


def test_ratio_formats_slower_models_with_two_decimals():
    rows = [row("teacher", 4.0), row("labeller", 2.0)]
    assert inference_report.ratio(rows[1], rows, "teacher") == "0.50×"
    assert inference_report.ratio(rows[0], rows, "teacher") == "–"
    assert inference_report.ratio(rows[1], rows, "student") == "–"


def test_the_llm_sample_is_the_evaluate_stage_rule():
    from distill.stages.evaluate import capped

    rows = [{"i": i} for i in range(872)]
    assert [rows[i] for i in inference_measure.sample_ids(872, 256)] == capped(rows, 256)
    assert inference_measure.sample_ids(10, None) == inference_measure.sample_ids(10, 20) == list(range(10))


def test_overrides_apply_as_dvc_reads_them():
    base = {
        "task": "sst2",
        "train": {"recipe": "finetune", "lr": 5e-5},
        "labelled": {"splits": ["fewshot", "validation"]},
    }
    out = inference.with_overrides(
        base,
        {"task": "ag_news", "train.recipe": "setfit", "labelled.splits": "[fewshot]", "train.setfit_iterations": 2},
    )
    assert out == {
        "task": "ag_news",
        "train": {"recipe": "setfit", "lr": 5e-5, "setfit_iterations": 2},
        "labelled": {"splits": ["fewshot"]},
    }
    assert base["train"]["recipe"] == "finetune"  # the params themselves are left as they were


def test_the_docs_block_is_rendered_from_the_rows():
    """Once measured, every cell of the `inference` block comes from benchmarks/results/inference.jsonl."""
    if not inference.RESULTS.exists():
        pytest.skip("not measured yet: the block holds the command that fills it")
    from runner import load_results

    text = (REPO / "docs" / "benchmarks.md").read_text()
    begin, end = "<!-- inference:begin -->\n", "\n<!-- inference:end -->"
    assert (
        inference_report.render(load_results(inference.RESULTS), "inference.svg")
        == text[text.index(begin) + len(begin) : text.index(end)]
    )

"""The train stage runs unchanged under `accelerate launch`: one process (what a GPU user starts with) and two
data-parallel CPU processes (gloo), which must train one student and write it once."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import POSITIVE, NEGATIVE, write_jsonl, write_params
from distill.students.model import load_student


def pseudo_labelled(rows: list[dict]) -> list[dict]:
    """LLKD's train.jsonl: the teacher's label distribution and confidence on every row (a spread of confidences)."""
    out = []
    for i, r in enumerate(rows):
        conf = 0.55 + 0.4 * (i % 5) / 4
        other = "negative" if r["label"] == "positive" else "positive"
        out.append(
            {
                **r,
                "id": f"pool-{i}",
                "source": "pseudo",
                "meta": {"confidence": conf, "teacher_probs": {r["label"]: conf, other: 1 - conf}},
            }
        )
    return out


# zerogen: a labelled train.jsonl, every row trained. llkd: online selection (a no-grad probe pass, then only the
# kept rows), where each process keeps a different number of rows per step and DDP must still average one gradient.
@pytest.mark.parametrize("processes,method", [(1, "zerogen"), (2, "zerogen"), (2, "llkd")])
def test_train_stage_under_accelerate_launch(tmp_path, toy_task, tiny_student, processes, method):
    rows = [
        {"text": f"it was {words[i % 6]} {i}", "label": label}
        for i in range(24)
        for label, words in (("positive", POSITIVE), ("negative", NEGATIVE))
    ]
    if method == "llkd":
        rows = pseudo_labelled(rows)
    write_jsonl(tmp_path / "train.jsonl", rows)
    # Random batches: here a row's length gives its label away (the two word lists differ in length), so length-grouped
    # batches would be one label each, and this test is about data parallelism, not batching.
    write_params(
        tmp_path / "params.yaml",
        method=method,
        train={
            "model": str(tiny_student),
            "epochs": 3,
            "lr": 1e-3,
            "batch_size": 8,
            "min_steps": 0,
            "device": "cpu",
            "group_by_length": False,
        },
    )
    launcher = Path(sys.executable).parent / "accelerate"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    # one process: --cpu; two: accelerate's multi-process launcher (torchrun), here with gloo on the CPU (train.device)
    mode = ["--cpu"] if processes == 1 else ["--multi_gpu"]
    cmd = [
        str(launcher),
        "launch",
        *mode,
        "--num_processes",
        str(processes),
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        str(29500 + os.getpid() % 1000),
        "-m",
        "distill.cli",
        "train",
        "--params",
        "params.yaml",
        "--task-dir",
        str(toy_task),
        "--data",
        "train.jsonl",
        "--model-out",
        "student",
        "--metrics",
        "train.json",
        "--history",
        "history.json",
    ]
    r = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    metrics = json.loads((tmp_path / "train.json").read_text())
    assert metrics["processes"] == processes and metrics["n_train"] == len(rows)
    history = json.loads((tmp_path / "history.json").read_text())
    assert len(history) == 3 and history[-1]["train_loss"] < history[0]["train_loss"]
    if method == "llkd":  # the selector ran and kept some rows, not all and not none
        assert all(0 < h["selected_fraction"] < 1 for h in history), history
    student = load_student(tmp_path / "student")
    assert student.labels == ["negative", "positive"]
    assert not list(tmp_path.glob(".student.*"))  # no half-written folder from a second writer

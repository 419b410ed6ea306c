"""The stages chained on a fake LLM and a tiny student, then registered in a real MLflow (sqlite)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import write_params
from distill.config import load_params
from distill.core.io import read_jsonl
from distill.stages import evaluate, register, train
from distill.methods.zerogen import generate
from distill.methods.zerogen import prompts


@pytest.fixture
def params(tmp_path, tiny_student, monkeypatch):
    monkeypatch.chdir(tmp_path)  # .cache/ and mlflow.db land in the scratch folder
    return load_params(
        write_params(
            tmp_path / "params.yaml",
            task="toy",
            method="zerogen",  # each test picks its method; stages get it resolved
            generate={"n_per_label": 12, "min_words": 3},
            train={"model": str(tiny_student), "epochs": 3, "lr": 1e-3, "batch_size": 8, "min_steps": 0},
            evaluate={"teacher_max_examples": 10},
        )
    )


def test_pipeline_on_fake_llm(params, toy_task, fake_backend, tmp_path):
    task = str(toy_task)
    prompts.run(params, task, "w/prompts.jsonl")
    generate.run(params, task, "w/prompts.jsonl", "w/generated.jsonl", "m/generate.json")
    rows = read_jsonl("w/generated.jsonl")
    gm = json.loads((tmp_path / "m/generate.json").read_text())
    assert gm["requested"] == 24 and gm["kept"] == len(rows) > 0
    assert gm["llm.calls"] == 24 + len(rows)  # 24 samples + one label check per kept sample
    for r in rows:
        assert set(r) == {"id", "text", "label", "source", "round", "meta", "_line"}
        assert r["meta"]["raw"] and r["meta"]["prompt_id"] and r["meta"]["model"] == "fake-llm@0"
        assert max(r["meta"]["teacher_probs"], key=r["meta"]["teacher_probs"].get) == r["label"]

    calls = fake_backend.calls
    generate.run(params, task, "w/prompts.jsonl", "w/generated2.jsonl", "m/generate2.json")
    assert fake_backend.calls == calls  # unchanged config: zero LLM calls
    assert (tmp_path / "w/generated2.jsonl").read_text() == (tmp_path / "w/generated.jsonl").read_text()

    train.run(params, task, "w/generated.jsonl", "models/student", "m/train.json")
    assert (tmp_path / "models/student/config.json").is_file()
    evaluate.run(params, task, "models/student", "m/metrics.json", "plots/confusion.json")
    metrics = json.loads((tmp_path / "m/metrics.json").read_text())
    assert 0 <= metrics["student_accuracy"] <= 1 and metrics["teacher_accuracy"] == 1.0
    assert metrics["n_test"] == 40 and metrics["teacher_n_test"] == 10
    assert metrics["val_n"] == 20 and metrics["val_teacher_n"] == 10  # the cap holds on validation too
    confusion = json.loads((tmp_path / "plots/confusion.json").read_text())
    assert len(confusion) == 40 and set(confusion[0]) == {"actual", "predicted"}

    register.run(
        params, "w/generated.jsonl", "models/student", ["m/metrics.json", "m/generate.json"], "w/registered.json"
    )
    first = json.loads((tmp_path / "w/registered.json").read_text())
    assert first["alias"] == "champion" and first["model_name"] == "distill-toy"
    register.run(params, "w/generated.jsonl", "models/student", ["m/metrics.json"], "w/registered.json")
    second = json.loads((tmp_path / "w/registered.json").read_text())
    assert second["alias"] == "challenger" and second["previous_champion"] == first["version"]  # not better: no move

    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = mlflow.get_run(first["run_id"])
    assert run.data.params["generate.n_per_label"] == "12"
    assert run.data.metrics["student_accuracy"] == metrics["student_accuracy"]
    assert run.data.metrics["generate.kept"] == gm["kept"]
    assert run.data.tags["method"] == "zerogen" and len(run.data.tags["generated_sha256"]) == 64
    import pandas as pd

    model = mlflow.pyfunc.load_model("models:/distill-toy@champion")
    pred = model.predict(
        pd.DataFrame({"text": ["a wonderful and great movie", "dull and awful"]})
    )  # the signature's columns
    assert set(pred["label"]) <= {"negative", "positive"} and len(pred) == 2


def cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "distill.cli", *args], cwd=cwd, capture_output=True, text=True)


def test_cli_bad_input_is_one_line_and_writes_nothing(toy_task, tmp_path):
    (tmp_path / "params.yaml").write_text("generate:\n  n_per_label: -3\n")
    r = cli("prompts", "--task-dir", str(toy_task), "--out", "out/prompts.jsonl", cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.strip() == "error: params.yaml: generate.n_per_label: Input should be greater than 0 (got -3)"
    assert not (tmp_path / "out").exists()

    (tmp_path / "params.yaml").write_text("task: toy\n")
    (toy_task / "fewshot.jsonl").write_text(
        '{"text": "fine", "label": "positive"}\n{"text": "bad", "label": "awful"}\n'
    )
    (tmp_path / "p.jsonl").write_text('{"id": "x", "label": "positive", "messages": [], "prefix": "", "seed": 1}\n')
    r = cli(
        "generate",
        "--task-dir",
        str(toy_task),
        "--prompts",
        "p.jsonl",
        "--out",
        "g.jsonl",
        "--metrics",
        "m.json",
        cwd=tmp_path,
    )
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "g.jsonl").exists() and not (tmp_path / "m.json").exists()

    r = cli("prompts", "--task-dir", str(tmp_path / "missing"), "--out", "x.jsonl", cwd=tmp_path)
    assert r.returncode == 2 and "unknown task" in r.stderr and not (tmp_path / "x.jsonl").exists()


def test_every_command_has_help():
    from click.testing import CliRunner

    from distill.cli import cli as group

    for name, cmd in group.commands.items():
        out = CliRunner().invoke(group, [name, "--help"])
        assert out.exit_code == 0 and cmd.help and "--" in out.output


def test_labelled_reference_uses_real_labels_only(tmp_path, toy_task, fake_backend, monkeypatch):
    from distill.stages import assemble

    monkeypatch.chdir(tmp_path)
    params = load_params(
        write_params(
            tmp_path / "params.yaml", task="toy", method="labelled", labelled={"splits": ["fewshot", "validation"]}
        )
    )
    assemble.run(
        params,
        str(toy_task),
        {"zerogen": "unused", "gold": "unused", "llkd": "unused", "s3": "unused"},
        "w/train.jsonl",
        "m/data.json",
        "plots/it.tsv",
    )
    rows = read_jsonl("w/train.jsonl")
    assert (
        len(rows) == 8 + 20 and {r["source"] for r in rows} == {"gold"} and fake_backend.calls == 0
    )  # no fewshot twice


def test_fewshot_rows_join_with_their_weight_or_not_at_all(tmp_path, toy_task):
    from distill.stages.assemble import with_fewshot
    from distill.core.tasks import load_task

    task = load_task(toy_task)
    synthetic = [{"text": "a made-up review", "label": "positive"}]
    assert with_fewshot(task, synthetic, 0.0) == []
    real = with_fewshot(task, synthetic, 2.5)
    assert len(real) == 8 and {r["weight"] for r in real} == {2.5}
    assert with_fewshot(task, synthetic + real, 1.0) == []  # already there: not added twice


def test_a_task_folder_without_task_yaml_runs(params, toy_task, fake_backend):
    """A folder in the shared data format as it comes (no task.yaml): generic prompts, same stages."""
    (toy_task / "task.yaml").unlink()
    task = str(toy_task)
    prompts.run(params, task, "w/prompts.jsonl")
    reqs = read_jsonl("w/prompts.jsonl")
    assert len(reqs) == 24 and "'positive'" in reqs[-1]["messages"][-1][1]
    generate.run(params, task, "w/prompts.jsonl", "w/generated.jsonl", "m/generate.json")
    train.run(params, task, "w/generated.jsonl", "models/student", "m/train.json")
    evaluate.run(params, task, "models/student", "m/metrics.json", "plots/confusion.json")
    assert json.loads(Path("m/metrics.json").read_text())["n_test"] == 40


def test_runs_are_judged_on_validation_rows_their_data_never_used(params, toy_task, fake_backend, tmp_path):
    """val_* (what settings and @champion are chosen on) counts only validation rows the run's data did not use: S3
    mines part of validation.jsonl, so it is judged on the rest; `labelled` trained on validation.jsonl has no val_*
    metrics and is registered without competing for @champion."""
    from distill.methods.s3.algorithm import error_split
    from distill.stages import assemble

    task = str(toy_task)
    reference = params.model_copy(
        update={
            "method": "labelled",
            "labelled": params.labelled.model_copy(update={"splits": ["fewshot", "validation"]}),
        }
    )
    assemble.run(
        reference,
        task,
        {"zerogen": "-", "gold": "-", "llkd": "-", "s3": "-"},
        "w/train.jsonl",
        "m/data.json",
        "plots/it.tsv",
    )
    train.run(params, task, "w/train.jsonl", "models/student", "m/train.json")
    held_out = error_split(read_jsonl(toy_task / "validation.jsonl"), ["text"], params.s3.error_fraction)[1]
    judged = {}
    for name, p in [("zerogen", params), ("s3", params.model_copy(update={"method": "s3"})), ("labelled", reference)]:
        evaluate.run(p, task, "models/student", f"m/{name}/metrics.json", "plots/confusion.json")
        judged[name] = json.loads((tmp_path / f"m/{name}/metrics.json").read_text())
    assert judged["zerogen"]["val_n"] == 20 and judged["s3"]["val_n"] == len(held_out) and 0 < len(held_out) < 20
    assert judged["labelled"]["val_n"] == 0 and not any(
        k.startswith("val_") and k != "val_n" for k in judged["labelled"]
    )

    register.run(reference, "w/train.jsonl", "models/student", ["m/labelled/metrics.json"], "w/registered.json")
    assert (
        json.loads((tmp_path / "w/registered.json").read_text())["alias"] == "challenger"
    )  # no champion yet, still not one
    register.run(params, "w/train.jsonl", "models/student", ["m/zerogen/metrics.json"], "w/registered.json")
    champion = json.loads((tmp_path / "w/registered.json").read_text())
    assert champion["alias"] == "champion"
    register.run(reference, "w/train.jsonl", "models/student", ["m/labelled/metrics.json"], "w/registered.json")
    assert json.loads((tmp_path / "w/registered.json").read_text())["previous_champion"] == champion["version"]


def test_summary_prints_both_accuracies_for_every_task_kind(tmp_path):
    """`make run` ends with `distill summary`: a classification run shows macro-F1; a seq2seq run (no labels) has none."""
    from click.testing import CliRunner

    from distill.cli import cli as group

    base = {"student_accuracy": 0.75, "teacher_accuracy": 0.8, "n_test": 40, "teacher_n_test": 8}
    for name, metrics, f1 in [("cls", {**base, "student_macro_f1": 0.7}, "macro-F1 0.7000, "), ("seq", base, "")]:
        (tmp_path / f"{name}.json").write_text(json.dumps(metrics))
        out = CliRunner().invoke(
            group, ["summary", "--metrics", str(tmp_path / f"{name}.json"), "--registered", str(tmp_path / "none.json")]
        )
        assert out.exit_code == 0, out.output
        assert (
            f"student test accuracy: 0.7500  ({f1}40 rows)" in out.output
            and "teacher test accuracy: 0.8000" in out.output
        )
        assert "method:" not in out.output and "registered:" not in out.output  # nothing registered
    (tmp_path / "reg.json").write_text(
        json.dumps({"model_name": "distill-toy", "alias": "champion", "version": 2, "method": "llkd"})
    )
    out = CliRunner().invoke(
        group, ["summary", "--metrics", str(tmp_path / "cls.json"), "--registered", str(tmp_path / "reg.json")]
    )
    assert (
        "method: llkd" in out.output and "registered: models:/distill-toy@champion (version 2)" in out.output
    )  # what auto became
    # student, labeller and teacher side by side, on the teacher's rows too where its sample is smaller
    (tmp_path / "lab.json").write_text(
        json.dumps(
            {
                **base,
                "student_accuracy_teacher_rows": 0.625,
                "labeller_accuracy": 0.875,
                "val_student_accuracy": 0.7,
                "val_labeller_accuracy": 0.9,
                "val_teacher_accuracy": 0.6,
                "val_n": 20,
                "val_teacher_n": 20,
            }
        )
    )
    out = CliRunner().invoke(
        group, ["summary", "--metrics", str(tmp_path / "lab.json"), "--registered", str(tmp_path / "none.json")]
    )
    assert (
        "  on the teacher's rows: 0.6250  (8 rows)" in out.output
        and "labeller test accuracy: 0.8750  (8 rows)" in out.output
    )
    assert "validation: student 0.7000, labeller 0.9000, teacher 0.6000" in out.output


def test_teacher_baseline_cap_is_a_fixed_uniform_sample():
    from distill.stages.evaluate import capped

    rows = [{"id": i, "label": "negative" if i < 500 else "positive"} for i in range(1000)]  # a file sorted by label
    few = capped(rows, 100)
    assert len(few) == 100 and [r["id"] for r in few] == sorted(r["id"] for r in few)  # file order kept
    assert 30 < sum(r["label"] == "negative" for r in few) < 70  # not the first 100 rows: both labels
    assert capped(rows, 100) == few and capped(rows, None) == rows and capped(rows, 5000) == rows

"""The stages chained on a fake LLM and a tiny student, then registered in a real MLflow (sqlite)."""
import json
import subprocess
import sys

import pytest

from conftest import write_params
from distill.config import load_params
from distill.io import read_jsonl
from distill.stages import evaluate, generate, prompts, register, train


@pytest.fixture
def params(tmp_path, tiny_student, monkeypatch):
    monkeypatch.chdir(tmp_path)  # .cache/ and mlflow.db land in the scratch folder
    return load_params(write_params(
        tmp_path / "params.yaml", task="toy",
        generate={"n_per_label": 12, "min_words": 3},
        train={"model": str(tiny_student), "epochs": 3, "lr": 1e-3, "batch_size": 8, "patience": 3},
        evaluate={"teacher_max_examples": 10},
    ))


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
    confusion = json.loads((tmp_path / "plots/confusion.json").read_text())
    assert len(confusion) == 40 and set(confusion[0]) == {"actual", "predicted"}

    register.run(params, "w/generated.jsonl", "models/student", ["m/metrics.json", "m/generate.json"], "w/registered.json")
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
    model = mlflow.pyfunc.load_model("models:/distill-toy@champion")
    pred = model.predict(["a wonderful and great movie", "dull and awful"])
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
    (toy_task / "fewshot.jsonl").write_text('{"text": "fine", "label": "positive"}\n{"text": "bad", "label": "awful"}\n')
    (tmp_path / "p.jsonl").write_text('{"id": "x", "label": "positive", "messages": [], "prefix": "", "seed": 1}\n')
    r = cli("generate", "--task-dir", str(toy_task), "--prompts", "p.jsonl", "--out", "g.jsonl", "--metrics", "m.json", cwd=tmp_path)
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

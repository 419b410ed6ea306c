"""`distill export`: a tiny student as one ONNX graph (fp32 and int8), checked against torch, with one-line errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import NEGATIVE, POSITIVE, write_jsonl
from distill.deploy import export as ex
from distill.deploy.export import OnnxStudent, command, compare

LABELS = ["negative", "positive"]


def review(i: int) -> dict:
    label = LABELS[i % 2]
    words = NEGATIVE if label == "negative" else POSITIVE
    return {"text": f"a {words[i % 6]} and {words[(i * 5) % 6]} movie " + "really " * (i % 7) + str(i), "label": label}


# rows of very different lengths, the last past max_length (truncated), so that batches are padded
ROWS = [review(i) for i in range(20)] + [
    {"text": "ok", "label": "positive"},
    {"text": "word " * 300, "label": "negative"},
]


def invoke(*args):
    return CliRunner().invoke(command, [str(a) for a in args], catch_exceptions=True)


def run_main(monkeypatch, capsys, *args) -> tuple[int, str, str]:
    """`distill export ...` through cli.main, as a user runs it: (exit code, stdout, stderr)."""
    from distill import cli

    monkeypatch.setitem(cli.cli.commands, "export", command)
    monkeypatch.setattr(sys, "argv", ["distill", "export", *map(str, args)])
    with pytest.raises(SystemExit) as e:
        cli.main()
    captured = capsys.readouterr()
    return e.value.code, captured.out, captured.err


def make_student(tiny_student, path: Path, fields=("text",), input_names=None, **kw) -> Path:
    from distill.students.model import new_student

    new_student(tiny_student, LABELS, list(fields), seed=0, task="toy", **kw).save_pretrained(path)
    if input_names:  # a tokenizer without token_type_ids, as MPNet's
        config = json.loads((path / "tokenizer_config.json").read_text())
        (path / "tokenizer_config.json").write_text(json.dumps({**config, "model_input_names": input_names}))
    return path


@pytest.fixture(scope="module")
def exported(tiny_student, tmp_path_factory):
    """A student, its fp32 + int8 export and check on ROWS: (student folder, export folder, CLI result)."""
    root = tmp_path_factory.mktemp("export")
    src = make_student(tiny_student, root / "student", max_length=24)
    write_jsonl(root / "check.jsonl", ROWS)
    result = invoke(src, "--int8", "--check", root / "check.jsonl", "--threads", 1)
    return src, root / "student-onnx", result


@pytest.fixture(scope="module")
def student(exported):
    from distill.students.model import load_student

    return load_student(exported[0])


def test_export_writes_a_checked_folder(exported):
    import onnx

    src, out, result = exported
    assert result.exit_code == 0, result.output
    assert f"-> {out} in " in result.output and "(opset 17; onnx.checker full check: ok)" in result.output
    assert {"model.onnx", "model.int8.onnx", "tokenizer.json", "distill.json", "export_check.json"} <= {
        p.name for p in out.iterdir()
    }
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temporary folder left
    for name in ("model.onnx", "model.int8.onnx"):
        onnx.checker.check_model(str(out / name), full_check=True)
    graph = onnx.load(str(out / "model.onnx")).graph
    assert [i.name for i in graph.input] == ["input_ids", "attention_mask", "token_type_ids"]
    assert [o.name for o in graph.output] == ["logits", "probs"]
    dims = [d.dim_param for d in graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", "sequence"]  # both axes dynamic
    meta = json.loads((out / "distill.json").read_text())
    assert meta["kind"] == "onnx" and meta["labels"] == LABELS and meta["fields"] == ["text"] and meta["opset"] == 17
    assert (
        meta["max_length"] == 24
        and meta["source"]["path"] == str(src.resolve())
        and len(meta["source"]["sha256"]) == 64
    )
    assert meta["files"] == {"fp32": "model.onnx", "int8": "model.int8.onnx"} and meta["check"]["passed"] is True
    assert (out / "model.int8.onnx").stat().st_size < (out / "model.onnx").stat().st_size / 2


def test_onnx_probs_match_torch_at_any_shape(exported, student):
    _, out, _ = exported
    onnx_student = OnnxStudent(out, threads=1)
    for batch_size in (1, 3, 64):  # batches of 1, odd ones padded to their longest row, and all rows at once
        got = onnx_student.proba(ROWS, batch_size)
        assert got.shape == (len(ROWS), 2)
        assert abs(got - student.proba(ROWS, batch_size).numpy()).max() < 1e-4
    assert onnx_student.predict(ROWS) == student.predict(ROWS)
    batch = onnx_student.encode(ROWS[-2:])  # the same token ids as the PyTorch student's tokenizer
    assert (batch["input_ids"] == student.encode(ROWS[-2:])["input_ids"].numpy()).all() and batch[
        "input_ids"
    ].shape == (2, 24)


def test_check_report(exported):
    _, out, result = exported
    report = json.loads((out / "export_check.json").read_text())
    assert report["rows"] == report["labelled"] == len(ROWS) and report["passed"] is True
    assert set(report["models"]) == {"torch", "onnx fp32", "onnx int8"}
    assert (
        report["models"]["onnx fp32"]["agreement"] == 1.0 and report["models"]["onnx fp32"]["max_abs_prob_diff"] < 1e-4
    )
    assert 0 <= report["models"]["onnx int8"]["agreement"] <= 1
    assert report["models"]["onnx fp32"]["accuracy"] == report["models"]["torch"]["accuracy"]
    for name in report["models"]:
        assert name in result.output
    int8 = OnnxStudent(out, int8=True, threads=1).proba(ROWS)
    assert abs(int8.sum(-1) - 1).max() < 1e-5  # the graph's softmax survives quantisation


def test_pair_student_without_token_type_ids(tiny_student, tmp_path):
    """Two text fields (truncated longest-first) and a tokenizer that gives no token_type_ids (as MPNet's), CLS
    pooling and L2 normalisation: all of it inside the graph."""
    from distill.students.model import load_student

    src = make_student(
        tiny_student,
        tmp_path / "pair",
        ["premise", "hypothesis"],
        ["input_ids", "attention_mask"],
        pooling="cls",
        normalize=True,
        max_length=16,
    )
    result = invoke(src, "--out", tmp_path / "out", "--opset", 18)
    assert result.exit_code == 0, result.output
    assert "input_ids + attention_mask -> logits, probs" in result.output and "opset 18" in result.output
    rows = [{"premise": r["text"], "hypothesis": ROWS[-1 - i]["text"]} for i, r in enumerate(ROWS)]
    torch_probs = load_student(src).proba(rows, 4).numpy()
    assert abs(OnnxStudent(tmp_path / "out").proba(rows, 4) - torch_probs).max() < 1e-4
    with pytest.raises(ex.DistillError, match="exported without --int8"):
        OnnxStudent(tmp_path / "out", int8=True)


def test_compare_is_pure_arithmetic():
    probs = {
        "torch": [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.5, 0.5]],
        "onnx": [[0.8, 0.2], [0.3, 0.7], [0.4, 0.6], [0.5, 0.5]],
    }
    report = compare(LABELS, ["negative", "positive", "positive", None], probs)
    assert (report["rows"], report["labelled"], report["reference"]) == (4, 3, "torch")
    assert report["models"]["torch"] == {"accuracy": 2 / 3, "agreement": 1.0, "max_abs_prob_diff": 0.0}
    onnx = report["models"]["onnx"]
    assert onnx["accuracy"] == 1.0 and onnx["agreement"] == 0.75 and onnx["max_abs_prob_diff"] == pytest.approx(0.2)
    assert "onnx" in ex.table(report) and "0.7500" in ex.table(report)
    assert compare(LABELS, [None], {"torch": [[1.0, 0.0]]})["models"]["torch"]["accuracy"] is None
    with pytest.raises(ValueError, match="shape"):
        compare(LABELS, [None], {"torch": [[1.0, 0.0]], "onnx": [[1.0, 0.0, 0.0]]})


def test_failed_check_exits_1_and_force_replaces(exported, tmp_path, monkeypatch, capsys):
    """--force swaps a new export in (no int8 this time: the old int8 file goes); a check under the bar exits 1, the
    export kept with the failure recorded."""
    src, _, _ = exported
    out = tmp_path / "out"
    write_jsonl(tmp_path / "check.jsonl", ROWS[:4])
    assert invoke(src, "--out", out, "--int8").exit_code == 0
    monkeypatch.setattr(ex, "MIN_AGREEMENT", 1.01)
    code, stdout, err = run_main(monkeypatch, capsys, src, "--out", out, "--force", "--check", tmp_path / "check.jsonl")
    assert (
        code == 1 and "check failed: onnx fp32 gives torch's label on 100.00% of rows" in err and "onnx fp32" in stdout
    )
    assert not (out / "model.int8.onnx").exists() and (out / "model.onnx").is_file()
    assert json.loads((out / "export_check.json").read_text())["passed"] is False
    assert json.loads((out / "distill.json").read_text())["check"]["passed"] is False


def test_bad_input_is_one_line_exit_2(exported, tmp_path, monkeypatch, capsys):
    src, _, _ = exported
    monkeypatch.chdir(tmp_path)
    gen = tmp_path / "gen"
    gen.mkdir()
    (gen / "distill.json").write_text(json.dumps({"kind": "generator"}))
    (tmp_path / "taken").mkdir()
    (tmp_path / "bad.jsonl").write_text('{"txt": "no text field"}\n')
    (tmp_path / "empty.jsonl").write_text("")
    cases = {
        ("nope",): "nope: no such student folder (MODEL is a student folder, models:/",
        (
            tmp_path / "taken",
        ): f"{tmp_path / 'taken'}: not a distill student folder (no distill.json / head.safetensors",
        (
            gen,
        ): f"{gen}: a seq2seq task's student (a generator): distill export works with classification students only",
        (src, "--format", "tflite"): "--format: 'tflite' is not supported (one of: onnx)",
        (src, "--out", "taken"): "taken: already exists (pass --force to replace it, or --out elsewhere)",
        (src, "--out", src, "--force"): f"--out {src}: would replace the student folder itself",
        (src, "--out", "x", "--check", "nope.jsonl"): "nope.jsonl: file not found",
        (src, "--out", "x", "--check", "bad.jsonl"): "bad.jsonl:1: missing or empty field 'text'",
        (src, "--out", "x", "--check", "empty.jsonl"): "empty.jsonl: no rows to check",
        (src, "--out", "x", "--log"): f"--log: MODEL '{src}' is a folder; --log needs an MLflow URI",
        ("models:/distill-toy@champion",): "models:/distill-toy@champion: no MLflow store at sqlite:///",
        ("models:/distill-toy", "--out", "x"): "models:/distill-toy: name a version or an alias",
    }
    for args, message in cases.items():
        code, _, err = run_main(monkeypatch, capsys, *args)
        assert code == 2 and err.startswith(f"error: {message}"), (args, err)
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl", "empty.jsonl", "gen", "taken"]  # nothing written
    assert src.is_dir() and (src / "head.safetensors").is_file()


def test_mlflow_uri_and_log(exported, tmp_path, monkeypatch):
    """An MLflow model exports to models/onnx, and --log puts the folder under onnx/ in the model's run."""
    from mlflow import MlflowClient

    from distill.tracking import log_student_run

    src, _, _ = exported
    monkeypatch.chdir(tmp_path)  # the store lock and mlartifacts/ live at the project root: here
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    info = log_student_run(
        "toy",
        "run",
        {"method": "zerogen"},
        {"val_student_accuracy": 0.5},
        {},
        str(src),
        "distill-toy",
        "val_student_accuracy",
    )
    result = invoke("models:/distill-toy@champion", "--log")
    assert result.exit_code == 0, result.output
    assert f"logged models/onnx to MLflow run {info['run_id']} under onnx/" in result.output
    meta = json.loads((tmp_path / "models/onnx/distill.json").read_text())
    assert meta["source"]["model"] == meta["source"]["path"] == "models:/distill-toy@champion"
    assert meta["source"]["sha256"] == ex.folder_sha256(src)  # the very folder that was logged
    logged = {f.path for f in MlflowClient(store).list_artifacts(info["run_id"], "onnx")}
    assert {"onnx/model.onnx", "onnx/distill.json", "onnx/tokenizer.json"} <= logged
    assert ex.run_id_of(f"runs:/{info['run_id']}") == ex.run_id_of("models:/distill-toy/1") == info["run_id"]
    result = invoke("models:/distill-toy/7", "--out", "x")
    assert result.exit_code == 1 and "Model Version (name=distill-toy, version=7) not found" in str(result.exception)

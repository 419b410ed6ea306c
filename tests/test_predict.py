"""`distill predict`: a student folder or an MLflow model labels a JSONL/CSV file, streamed, with one-line errors."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import NEGATIVE, POSITIVE, write_jsonl
from distill.deploy.predict import command, predict_rows, read_rows

LABELS = ["negative", "positive"]


@pytest.fixture(scope="module")
def student_dir(tiny_student, tmp_path_factory) -> Path:
    """An untrained (random-head) student on the tiny encoder: predictions are arbitrary but deterministic."""
    from distill.students.model import new_student

    path = tmp_path_factory.mktemp("predict") / "student"
    new_student(tiny_student, LABELS, ["text"], seed=0, task="toy").save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def student(student_dir):
    from distill.students.model import load_student

    return load_student(student_dir)


def review(i: int) -> dict:
    label = LABELS[i % 2]
    words = NEGATIVE if label == "negative" else POSITIVE
    return {"text": f"a {words[i % 6]} and {words[(i * 5) % 6]} movie {i}", "label": label}


def invoke(*args: str):
    return CliRunner().invoke(command, [str(a) for a in args], catch_exceptions=True)


def run_main(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    """`distill predict ...` through cli.main, as a user runs it: (exit code, stderr)."""
    from distill import cli

    monkeypatch.setitem(cli.cli.commands, "predict", command)
    monkeypatch.setattr(sys, "argv", ["distill", "predict", *map(str, args)])
    with pytest.raises(SystemExit) as e:
        cli.main()
    return e.value.code, capsys.readouterr().err


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_folder_jsonl_to_jsonl_with_accuracy(student_dir, student, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rows = [{"id": f"r{i}", **review(i)} for i in range(10)]
    rows[3]["label"] = 1  # an integer label is its name "1": unknown to this student, so wrong and named
    write_jsonl(tmp_path / "in.jsonl", rows)
    result = invoke(student_dir, "in.jsonl", "--out", "out/pred.jsonl", "--batch-size", 3)
    assert result.exit_code == 0, result.output
    out = [json.loads(line) for line in (tmp_path / "out/pred.jsonl").read_text().splitlines()]
    want = student.predict(rows)
    assert [o["id"] for o in out] == [r["id"] for r in rows]
    assert [o["label"] for o in out] == want
    for o in out:
        assert set(o["probs"]) == set(LABELS) and abs(sum(o["probs"].values()) - 1) < 1e-4
        assert o["score"] == o["probs"][o["label"]] == max(o["probs"].values())
    correct = sum(w == label_of(r) for w, r in zip(want, rows))
    unknown = "(1 label(s) the student does not know: '1'; it knows: negative, positive)"
    assert f"accuracy {correct / 10:.4f} ({correct} of 10 labelled rows) {unknown}" in result.stderr
    assert "predict: 10 rows -> out/pred.jsonl" in result.stderr
    assert leftovers(tmp_path / "out") == []


def label_of(row: dict) -> str:
    return str(row["label"])


def test_stdout_line_numbers_and_no_labels(student_dir, student, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rows = [{"text": review(i)["text"]} for i in range(5)]
    (tmp_path / "in.jsonl").write_text(
        "\n".join(json.dumps(r) for r in rows[:2]) + "\n\n" + "".join(json.dumps(r) + "\n" for r in rows[2:])
    )
    result = invoke(student_dir, "in.jsonl", "-q")  # stdout is the default
    assert result.exit_code == 0, result.output
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert [o["line"] for o in out] == [1, 2, 4, 5, 6]  # the blank line 3 is skipped, not renumbered
    assert [o["label"] for o in out] == student.predict(rows)
    assert result.stderr == ""  # quiet, and no labels: nothing to score
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl"]


def test_csv_in_csv_out(student_dir, student, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rows = [review(i) for i in range(6)]
    rows[1]["text"] = 'quoted, with a comma and\na second line "here"'
    with open(tmp_path / "in.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "text", "label"])
        w.writerows([[i + 100, r["text"], r["label"] if i != 4 else ""] for i, r in enumerate(rows)])  # row 4: no label
    result = invoke(student_dir, "in.csv", "--out", "pred.csv")  # the format follows --out's extension
    assert result.exit_code == 0, result.output
    out = list(csv.DictReader(io.StringIO((tmp_path / "pred.csv").read_text())))
    assert list(out[0]) == ["id", "label", "score", "p_negative", "p_positive"]
    assert [o["id"] for o in out] == [str(i + 100) for i in range(6)]
    want = student.predict(rows)
    assert [o["label"] for o in out] == want
    assert all(float(o["score"]) == float(o[f"p_{o['label']}"]) for o in out)
    correct = sum(w == r["label"] for i, (w, r) in enumerate(zip(want, rows)) if i != 4)
    assert f"accuracy {correct / 5:.4f} ({correct} of 5 labelled rows)" in result.stderr
    # CSV in, JSONL out (--format), line numbers of the CSV's first physical line per row (row 1 spans two)
    with open(tmp_path / "noid.csv", "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([["text"], *([r["text"]] for r in rows[:3])])
    result = invoke(student_dir, "noid.csv", "--format", "jsonl")
    assert [json.loads(line)["line"] for line in result.stdout.splitlines()] == [2, 3, 5]


BAD = {  # name: (file name, content, the stderr line's expected start)
    "missing field": (
        "in.jsonl",
        [review(i) for i in range(6)] + [{"sentence": "x"}],
        "in.jsonl:7: missing field 'text' (the student reads: text)",
    ),
    "empty file": ("in.jsonl", b"", "in.jsonl: no rows"),
    "blank lines only": ("in.jsonl", b"\n \n", "in.jsonl: no rows"),
    "csv header only": ("in.csv", b"id,text\n", "in.csv: no rows"),
    "non-UTF-8": ("in.jsonl", b'{"text": "a"}\n{"text": "b"}\n{"text": "caf\xe9"}\n', "in.jsonl:3: not UTF-8 (byte"),
    "malformed JSON": ("in.jsonl", b'{"text": "a"}\n{"text": "b"\n', "in.jsonl:2: malformed JSON"),
    "not an object": ("in.jsonl", b'["a"]\n', "in.jsonl:1: expected a JSON object, got a list"),
    "not a string": ("in.jsonl", [review(0), {"text": 5}], "in.jsonl:2: field 'text' is a number, not text"),
    "null field": ("in.jsonl", [{"text": None}], "in.jsonl:1: field 'text' is null, not text"),
    "empty field": ("in.jsonl", [{"text": "  "}], "in.jsonl:1: empty field 'text'"),
    "long line": (
        "in.jsonl",
        b'{"text": "ok"}\n' + b'{"text": "' + b"x" * (1 << 20) + b'"}\n',
        "in.jsonl:2: line is 1048588 bytes, over the 1048576-byte limit",
    ),
    "csv column": (
        "in.csv",
        b"id,sentence\n1,a\n",
        "in.csv:1: no column 'text' (the student reads: text; the header has: id, sentence)",
    ),
    "csv extra cell": ("in.csv", b"id,text\n1,a\n2,b,c\n", "in.csv:3: 3 cells, the header has 2"),
    "unknown format": ("in.txt", b"hello\n", "in.txt: unknown input format '.txt'"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_exit_2_and_no_file(case, student_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    name, content, message = BAD[case]
    if isinstance(content, bytes):
        (tmp_path / name).write_bytes(content)
    else:
        write_jsonl(tmp_path / name, content)
    code, err = run_main(monkeypatch, capsys, student_dir, name, "--out", "out.jsonl", "--batch-size", 2)
    assert code == 2
    assert err.startswith(f"error: {message}"), err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no out.jsonl, no temporary file


def test_bad_model_or_input_path(student_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    write_jsonl(tmp_path / "in.jsonl", [review(0)])
    cases = {
        ("models/nope", "in.jsonl"): "error: models/nope: no such student folder (MODEL is a student folder, models:/",
        (student_dir, "nope.jsonl"): "error: nope.jsonl: file not found",
        (tmp_path, "in.jsonl"): f"error: {tmp_path}: not a distill student folder",
        ("models:/distill-toy@champion", "in.jsonl"): "error: models:/distill-toy@champion: no MLflow store at ",
    }
    for args, message in cases.items():
        code, err = run_main(monkeypatch, capsys, *args, "-o", "out.jsonl")
        assert (code, err.splitlines()[0]) == (2, err.strip()) and err.startswith(message), err
    gen = tmp_path / "gen"
    gen.mkdir()
    (gen / "distill.json").write_text(json.dumps({"kind": "generator"}))
    code, err = run_main(monkeypatch, capsys, "gen", "in.jsonl")
    assert code == 2 and err == (
        "error: gen: a seq2seq task's student (a generator): distill predict works with classification students only\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gen", "in.jsonl"]


@pytest.mark.filterwarnings("ignore:Add type hints")  # MLflow on StudentModel.predict, by design untyped
def test_mlflow_uris(student_dir, student, tmp_path, monkeypatch, capsys):
    from distill.tracking import log_student_run

    monkeypatch.chdir(tmp_path)  # the store lock and mlartifacts/ live at the project root: here
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    info = log_student_run(
        "toy",
        "run",
        {"method": "zerogen"},
        {"val_student_accuracy": 0.5},
        {},
        str(student_dir),
        "distill-toy",
        "val_student_accuracy",
    )
    assert info["alias"] == "champion"
    capsys.readouterr()  # MLflow's own logging of the run above
    rows = [review(i) for i in range(4)]
    write_jsonl(tmp_path / "in.jsonl", rows)
    run_id = info["run_id"]
    for uri in ("models:/distill-toy@champion", "models:/distill-toy/1", f"runs:/{run_id}/student", f"runs:/{run_id}"):
        result = invoke(uri, "in.jsonl", "-q")
        assert result.exit_code == 0, (uri, result.output)
        assert [json.loads(line)["label"] for line in result.stdout.splitlines()] == student.predict(rows)
        assert "Downloading artifacts" not in result.stderr
    cases = {
        "models:/distill-nope@champion": "Registered Model with name=distill-nope not found",
        "models:/distill-toy@nope": "Registered model alias nope not found",
        "models:/distill-toy/7": "Model Version (name=distill-toy, version=7) not found",
        "models:/distill-toy": "name a version or an alias, e.g. models:/distill-toy@champion",
        "runs:/0123456789abcdef0123456789abcdef/student": "Run with id=0123456789abcdef0123456789abcdef not found",
    }
    # a model with no "student" artifact (how a seq2seq generator is logged: a transformers pipeline)
    import mlflow

    from distill.students.serving import StudentModel

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.pyfunc.log_model(
        name="student", python_model=StudentModel(), registered_model_name="distill-gen", pip_requirements=[]
    )  # no inference of requirements: seconds
    cases["models:/distill-gen/1"] = "not a classification student (no 'student' artifact"
    capsys.readouterr()
    for uri, message in cases.items():
        code, err = run_main(monkeypatch, capsys, uri, "in.jsonl", "-o", "out.jsonl")
        assert code == 2 and err.startswith(f"error: {uri}: ") and message in err, err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "out.jsonl").exists()


def test_rows_are_read_lazily_one_batch_at_a_time(student_dir, student, tmp_path, monkeypatch):
    read = []

    def rows():
        for i in range(40):
            read.append(i)
            yield review(i)

    stream = predict_rows(student, rows(), batch_size=8)
    first = next(stream)
    assert len(read) == 8 and first[1]["label"] in LABELS  # one batch read, predicted and handed on
    assert len(list(stream)) == 39 and len(read) == 40
    # the file reader too: a malformed line 40 is not reached before the first batch is out
    path = tmp_path / "big.jsonl"
    path.write_text("".join(json.dumps(review(i)) + "\n" for i in range(39)) + "{oops\n")
    stream = predict_rows(student, read_rows(path, "jsonl", ["text"]), batch_size=8)
    assert next(stream)[0]["_line"] == 1
    # and the command writes as it goes: stdout holds the batches before the bad one, a --out file nothing
    monkeypatch.chdir(tmp_path)
    result = invoke(student_dir, "big.jsonl", "--batch-size", 8)
    assert "big.jsonl:40: malformed JSON" in str(result.exception)
    assert len(result.stdout.splitlines()) == 32
    result = invoke(student_dir, "big.jsonl", "--batch-size", 8, "--out", "out.jsonl")
    assert result.exception is not None and not (tmp_path / "out.jsonl").exists()


def test_help_names_every_model_form():
    result = CliRunner().invoke(command, ["--help"])
    assert result.exit_code == 0
    for text in ("models:/<name>@<alias>", "runs:/<run_id>/student", "--batch-size", "--input-format", "--format"):
        assert text in result.output

"""`mlflow models serve` on the registered student, as README "Serve the student" runs it: a tiny random student logged
and registered by log_student_run into a sqlite store, served from `models:/distill-toy@champion`, asked over HTTP."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

LABELS = ["negative", "positive"]
COLUMNS = ["label", "score", "p_negative", "p_positive"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(tmp_path: Path, env: dict) -> tuple[subprocess.Popen, str, Path]:
    """The server, its URL once /ping answers, and its log. A port taken between free_port() and uvicorn's bind
    (another test's server) is tried again on a new one."""
    import requests

    bindir = Path(sys.executable).parent
    for attempt in range(3):
        port, log = free_port(), tmp_path / f"serve-{attempt}.log"
        with open(log, "wb") as out:  # a file, not a pipe: a chatty server never blocks on a full pipe
            proc = subprocess.Popen(
                [
                    str(bindir / "mlflow"),
                    "models",
                    "serve",
                    "-m",
                    "models:/distill-toy@champion",
                    "--env-manager",
                    "local",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(port),
                ],
                cwd=tmp_path,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if requests.get(f"{url}/ping", timeout=2).status_code == 200:
                    return proc, url, log
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        stop(proc)
        if "address already in use" not in log.read_text(errors="replace").lower():
            break
    pytest.fail(
        f"mlflow models serve did not answer /ping within 60 s (exit {proc.returncode}):\n"
        f"{log.read_text(errors='replace')[-4000:]}"
    )


def stop(proc: subprocess.Popen) -> None:
    """The whole process group: mlflow's CLI and the uvicorn it starts."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def test_mlflow_models_serve_answers_the_registered_student(tmp_path, monkeypatch, tiny_student):
    import requests

    from distill.students.model import new_student
    from distill.tracking import log_student_run

    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    new_student(tiny_student, LABELS, ["text"], 0, max_length=32, task="toy").save_pretrained("student")
    log_student_run(
        "serve",
        "r",
        {"method": "zerogen"},
        {"val_student_accuracy": 0.5},
        {},
        "student",
        "distill-toy",
        "val_student_accuracy",
        examples=[{"text": "a fine movie"}],
    )
    # as README says: the venv's bin on PATH (mlflow runs `uvicorn` from it), the store named by MLFLOW_TRACKING_URI
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": uri,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    proc, url, log = start(tmp_path, env)
    try:

        def ask(payload: dict) -> requests.Response:
            return requests.post(f"{url}/invocations", json=payload, timeout=60)

        texts = ["a wonderful , moving film", "dull and lifeless", "superb"]
        answers = {
            "split, one row": ask({"dataframe_split": {"columns": ["text"], "data": [[texts[0]]]}}),
            "records, batch": ask({"dataframe_records": [{"text": t} for t in texts]}),
            "inputs, columns": ask({"inputs": {"text": texts}}),
            "inputs, list": ask({"inputs": texts}),  # the server names a single-field list by the signature
            "records, extra column": ask({"dataframe_records": [{"text": t, "label": "positive"} for t in texts]}),
        }
        for how, r in answers.items():
            assert r.status_code == 200, f"{how}: {r.status_code} {r.text[:500]}"
            preds = r.json()["predictions"]
            assert len(preds) == (1 if how == "split, one row" else 3), how
            for p in preds:
                assert list(p) == COLUMNS and p["label"] in LABELS, (how, p)
                assert (
                    p["score"] == max(p["p_negative"], p["p_positive"])
                    and abs(p["p_negative"] + p["p_positive"] - 1) < 1e-5
                )
        # the same texts get the same probabilities whatever the format (to float noise: a one-row batch pads less)
        batch = [p["p_positive"] for p in answers["records, batch"].json()["predictions"]]
        for how in ("inputs, columns", "inputs, list", "split, one row"):
            got = [p["p_positive"] for p in answers[how].json()["predictions"]]
            assert got == pytest.approx(batch[: len(got)], abs=1e-4), how

        bad = ask({"dataframe_records": [{"review": texts[0]}]})
        assert bad.status_code == 400, bad.text[:500]
        error = bad.json()
        assert error["error_code"] == "INVALID_PARAMETER_VALUE" and "stack_trace" not in error
        assert (
            "Model is missing inputs ['text']" in error["message"] and "'text': string (required)" in error["message"]
        )
        null = ask({"dataframe_records": [{"text": "fine"}, {"text": None}]})  # not scored as the text "None"
        assert null.status_code == 400 and "row 1: field 'text' must be one text" in null.json()["message"], null.text[
            :500
        ]
    finally:
        stop(proc)
    assert proc.returncode is not None, log.read_text()[-2000:]

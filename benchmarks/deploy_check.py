"""The student as a product (issue 43's acceptance): in a repository where `make run` has finished, label the task's
test split with the @champion (`distill predict`), export models/student to ONNX fp32 + int8 and check the export
against PyTorch (`distill export --check`), and serve the @champion with `mlflow models serve` (one row, a batch of 8,
a row with a missing field). Every step runs with the checked repository's own venv, from its root, and is timed.

One row, with provenance (provenance.py; the commit is the checked repository's), is appended to
benchmarks/results/deploy.jsonl; --render writes the latest row into the `deploy` block of docs/benchmarks.md. From
this repository's root, against a fresh clone where `make run` finished (~3-5 min on 2 cores):

    .venv/bin/python benchmarks/deploy_check.py --repo /tmp/fresh --render

Nothing in the checked repository is written: the predictions and the ONNX folder go to a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline import REPO, replace_block  # noqa: E402
from provenance import check_row, git_state, mlflow_run_id, provenance  # noqa: E402

RESULTS, DOC = REPO / "benchmarks" / "results" / "deploy.jsonl", REPO / "docs" / "benchmarks.md"
THREADS = 2
ACCURACY = re.compile(r"accuracy (\d+\.\d+) \((\d+) of (\d+) labelled rows\)")
HEADING = "### The student as a product: predict, export, serve (issue 43)"
INTRO = (
    "`benchmarks/deploy_check.py`, in a clone where `make run` finished: `distill predict` with the @champion on the "
    "test split (its accuracy against the champion run's), `distill export --int8 --check` of models/student, and "
    "`mlflow models serve` of the @champion (one row, 8 rows, a row missing its field: 400), each with the clone's "
    "venv: `.venv/bin/python benchmarks/deploy_check.py --repo /tmp/fresh --render`."
)
# Run by the checked repository's interpreter: the champion as its own MLflow sees it, and the versions that ran.
PROBE = """
import json, platform, sys
from importlib import metadata
from mlflow import MlflowClient
uri, name = sys.argv[1], sys.argv[2]
c = MlflowClient(tracking_uri=uri, registry_uri=uri)
v = c.get_model_version_by_alias(name, "champion")
def ver(p):
    try:
        return metadata.version(p)
    except metadata.PackageNotFoundError:
        return None
print(json.dumps({"version": str(v.version), "run_id": v.run_id,
    "student_accuracy": c.get_run(v.run_id).data.metrics.get("student_accuracy"), "python": platform.python_version(),
    **{p: ver(p) for p in ("torch", "mlflow", "onnxruntime", "transformers")}}))
"""


def env_for(repo: Path) -> dict[str, str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", MLFLOW_DISABLE_TELEMETRY="true")
    env.update(MLFLOW_TRACKING_URI="sqlite:///mlflow.db", PATH=f"{repo / '.venv' / 'bin'}{os.pathsep}{env['PATH']}")
    env.pop("VIRTUAL_ENV", None)
    return env


def call(args: list[str], repo: Path, timeout: int) -> tuple[subprocess.CompletedProcess, float]:
    t = time.perf_counter()
    p = subprocess.run(args, cwd=repo, env=env_for(repo), capture_output=True, text=True, timeout=timeout)
    if p.returncode:
        raise RuntimeError(f"{' '.join(args[:2])} exited {p.returncode}: {(p.stderr or p.stdout).strip()[-800:]}")
    return p, time.perf_counter() - t


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def gold(row: dict) -> str | None:  # distill.core.tasks.label_name: a string as it is, an integer id as its digits
    label = row.get("label")
    return (
        str(label)
        if isinstance(label, int) and not isinstance(label, bool)
        else label
        if isinstance(label, str)
        else None
    )


def predict(repo: Path, task: str, model: str, out: Path, champ: dict) -> dict:
    test = repo / "data" / "tasks" / task / "test.jsonl"
    p, took = call(
        [str(repo / ".venv/bin/distill"), "predict", model, str(test.relative_to(repo)), "-o", str(out)], repo, 1800
    )
    m = ACCURACY.search(p.stderr)
    if not m:
        raise RuntimeError(f"distill predict printed no accuracy line: {p.stderr.strip()[-400:]}")
    preds, rows = read_jsonl(out), read_jsonl(test)
    labelled = [(pr, r) for pr, r in zip(preds, rows) if gold(r) is not None]
    correct = sum(pr["label"] == gold(r) for pr, r in labelled)
    recomputed = correct / len(labelled)
    metrics = json.loads((repo / "metrics" / "metrics.json").read_text())
    return {
        "rows_in": len(rows),
        "rows_written": len(preds),
        "printed_accuracy": float(m[1]),
        "printed_correct": int(m[2]),
        "printed_labelled": int(m[3]),
        "recomputed_accuracy": recomputed,
        "recomputed_correct": correct,
        "champion_student_accuracy": champ["student_accuracy"],
        "equals_champion": champ["student_accuracy"] is not None
        and abs(recomputed - champ["student_accuracy"]) < 1e-9
        and float(m[1]) == round(champ["student_accuracy"], 4),
        "metrics_json_student_accuracy": metrics.get("student_accuracy"),
        "equals_metrics_json": abs(recomputed - metrics.get("student_accuracy", -1)) < 1e-9,
        "wall_s": round(took, 1),
    }


def export(repo: Path, task: str, out: Path) -> dict:
    test = f"data/tasks/{task}/test.jsonl"
    args = [str(repo / ".venv/bin/distill"), "export", "models/student", "--format", "onnx", "--int8"]
    p, took = call([*args, "--check", test, "--out", str(out), "--threads", str(THREADS)], repo, 3600)
    m = re.search(r" in (\d+(?:\.\d+)?) s \(opset", p.stdout)
    meta, check = json.loads((out / "distill.json").read_text()), json.loads((out / "export_check.json").read_text())
    return {
        "model": "models/student",
        "source_sha256": meta["source"]["sha256"],
        "opset": meta["opset"],
        "export_s": float(m[1]) if m else None,
        "fp32_mib": round((out / "model.onnx").stat().st_size / 2**20, 1),
        "int8_mib": round((out / "model.int8.onnx").stat().st_size / 2**20, 1),
        "check_rows": check["rows"],
        "passed": check["passed"],
        "models": check["models"],
        "wall_s": round(took, 1),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url: str, body: dict) -> tuple[int, dict | str, float]:
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    t = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            code, text = r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        code, text = e.code, e.read().decode()
    took = time.perf_counter() - t
    try:
        return code, json.loads(text), took
    except json.JSONDecodeError:
        return code, text, took


def start_server(repo: Path, model: str, log: Path, tries: int = 3) -> tuple[subprocess.Popen, int, float]:
    """`mlflow models serve` in its own process group, once /ping answers; another port if this one was taken."""
    for _ in range(tries):
        port = free_port()
        args = [str(repo / ".venv/bin/mlflow"), "models", "serve", "-m", model, "--env-manager", "local"]
        t = time.perf_counter()
        with log.open("w") as f:
            proc = subprocess.Popen(
                [*args, "-h", "127.0.0.1", "-p", str(port)],
                cwd=repo,
                env=env_for(repo),
                stdout=f,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        while time.perf_counter() - t < 120 and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as r:
                    if r.status == 200:
                        return proc, port, time.perf_counter() - t
            except (urllib.error.URLError, OSError):
                time.sleep(0.5)
        stop(proc)
        text = log.read_text()
        if "address already in use" not in text.lower():
            raise RuntimeError(f"mlflow models serve: no /ping in 120 s (exit {proc.poll()}): {text.strip()[-800:]}")
    raise RuntimeError(f"mlflow models serve: no free port in {tries} tries")


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the server's process group (uvicorn and its workers too), then SIGKILL to whatever is left."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            pass
    if proc.poll() is None:
        proc.wait(5)


def serve(repo: Path, task: str, model: str, preds: Path, log: Path) -> dict:
    rows = read_jsonl(repo / "data" / "tasks" / task / "test.jsonl")[:8]
    inputs = [{k: v for k, v in r.items() if k != "label"} for r in rows]
    expected = read_jsonl(preds)[:8]
    t0 = time.perf_counter()
    proc, port, ping_s = start_server(repo, model, log)
    try:
        url = f"http://127.0.0.1:{port}/invocations"
        out: dict = {"port": port, "ping_s": round(ping_s, 1)}
        agree, diffs = [], []
        for name, batch in (("one_row", inputs[:1]), ("batch_8", inputs)):
            code, body, took = post(url, {"dataframe_records": batch})
            answers = body.get("predictions", []) if isinstance(body, dict) else []
            same = [a.get("label") == e["label"] for a, e in zip(answers, expected)]
            agree += same
            diffs += [abs(a["score"] - e["score"]) for a, e in zip(answers, expected) if "score" in a]
            out[name] = {
                "status": code,
                "rows": len(answers),
                "latency_ms": round(took * 1000, 1),
                "labels_equal_predict": len(same) == len(batch) and all(same),
            }
        code, body, _ = post(url, {"dataframe_records": [{"not_a_field": rows[0].get("text", "x")}]})
        message = body.get("message", "") if isinstance(body, dict) else str(body)
        why = re.search(r"missing inputs?[^\n]*", message)  # MLflow's schema check: the line that names the field
        out["missing_field"] = {"status": code, "message": (why[0] if why else message)[:200]}
        out["labels_equal_predict"] = f"{sum(agree)} of {len(agree)}"
        out["max_abs_score_diff"] = max(diffs) if diffs else None
    finally:
        stop(proc)
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    return out


def measure(repo: Path) -> dict:
    state = git_state(repo)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    task = params["task"]
    name = f"distill-{task}"
    model = f"models:/{name}@champion"
    probe, _ = call([str(repo / ".venv/bin/python"), "-c", PROBE, "sqlite:///mlflow.db", name], repo, 300)
    champ = json.loads(probe.stdout.strip().splitlines()[-1])
    registered = repo / "data" / "work" / "registered.json"
    last = json.loads(registered.read_text()) if registered.exists() else {}
    loads = [os.getloadavg()[0]]
    row: dict = {
        "task": task,
        "model": model,
        "champion_version": champ["version"],
        "champion_run_id": champ["run_id"],
        "last_run": {k: last.get(k) for k in ("version", "alias", "run_id")},  # models/student and metrics.json's
    }
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="deploy-check-") as d:
        tmp = Path(d)
        row["predict"] = predict(repo, task, model, tmp / "pred.jsonl", champ)
        loads.append(os.getloadavg()[0])
        row["export"] = export(repo, task, tmp / "onnx")
        loads.append(os.getloadavg()[0])
        row["serve"] = serve(repo, task, model, tmp / "pred.jsonl", tmp / "serve.log")
        loads.append(os.getloadavg()[0])
    row.update(
        wall_s=round(time.perf_counter() - t0, 1),
        load_avg_1m=max(loads),
        date=time.strftime("%Y-%m-%d"),
        versions={k: champ[k] for k in ("mlflow", "onnxruntime", "transformers")},
        **provenance(repo, params, {}, THREADS, champ["run_id"] or mlflow_run_id(repo), state),
    )
    row.update(python=champ["python"], torch=champ["torch"])  # the checked venv's, which ran the steps
    check_row(row)
    return row


def summary(row: dict) -> str:
    p, e, s = row["predict"], row["export"], row["serve"]
    m = e["models"]
    return "\n".join(
        [
            f"{row['model']} (version {row['champion_version']}), commit {row['commit'][:7]}"
            f"{' (dirty)' if row['dirty'] else ''}, load {row['load_avg_1m']:.1f}",
            f"predict: {p['rows_written']}/{p['rows_in']} rows, printed {p['printed_accuracy']:.4f} "
            f"({p['printed_correct']} of {p['printed_labelled']}), recomputed {p['recomputed_accuracy']:.4f}; "
            f"champion run {p['champion_student_accuracy']:.4f} equal={p['equals_champion']}; metrics.json "
            f"{p['metrics_json_student_accuracy']:.4f} equal={p['equals_metrics_json']} ({p['wall_s']} s)",
            f"export: opset {e['opset']}, fp32 {e['fp32_mib']} MiB acc {m['onnx fp32']['accuracy']:.4f} agree "
            f"{m['onnx fp32']['agreement']:.4f}; int8 {e['int8_mib']} MiB acc {m['onnx int8']['accuracy']:.4f} agree "
            f"{m['onnx int8']['agreement']:.4f}; passed={e['passed']} ({e['export_s']} s export, {e['wall_s']} s step)",
            f"serve: /ping {s['ping_s']} s; 1 row {s['one_row']['status']} {s['one_row']['latency_ms']} ms; 8 rows "
            f"{s['batch_8']['status']} {s['batch_8']['latency_ms']} ms; labels = predict's {s['labels_equal_predict']}; "
            f"missing field {s['missing_field']['status']} ({s['wall_s']} s)",
        ]
    )


def render(row: dict) -> str:
    check_row(row)
    p, e, s = row["predict"], row["export"], row["serve"]
    fp32, int8 = e["models"]["onnx fp32"], e["models"]["onnx int8"]
    verdict = "equal" if p["equals_champion"] else "**differs**"
    head = (
        f"{row['date']}, `{row['model']}` (version {row['champion_version']}, run `{row['champion_run_id'][:8]}`), "
        f"commit `{row['commit'][:7]}`{' (dirty)' if row['dirty'] else ''}, {row['machine']} "
        f"(1-min load up to {row['load_avg_1m']:.1f}), torch {row['torch']}, mlflow {row['versions']['mlflow']}. "
        "Raw row: `benchmarks/results/deploy.jsonl`."
    )
    lines = [
        textwrap.fill(head, 118),
        "",
        "| step | result | wall |",
        "|---|---|---|",
        f"| `distill predict` @champion, test.jsonl | {p['rows_written']} of {p['rows_in']} rows written; accuracy "
        f"{p['printed_accuracy']:.4f} ({p['printed_correct']} of {p['printed_labelled']}), recomputed from the file "
        f"{p['recomputed_accuracy']:.4f}; the champion run's `student_accuracy` {p['champion_student_accuracy']:.4f}: "
        f"{verdict} (metrics.json, the last run's: {p['metrics_json_student_accuracy']:.4f}) | {p['wall_s']:.0f} s |",
        f"| `distill export models/student --int8 --check` | opset {e['opset']}, exported in {e['export_s']} s; "
        f"fp32 {e['fp32_mib']} MiB: accuracy {fp32['accuracy']:.4f}, agrees with torch on {fp32['agreement']:.2%}, "
        f"max abs dp {fp32['max_abs_prob_diff']:.1e}; int8 {e['int8_mib']} MiB: accuracy {int8['accuracy']:.4f}, "
        f"{int8['agreement']:.2%}, max abs dp {int8['max_abs_prob_diff']:.2f}; check "
        f"{'passed' if e['passed'] else '**failed**'} | {e['wall_s']:.0f} s |",
        f"| `mlflow models serve` @champion | /ping after {s['ping_s']} s; 1 row: {s['one_row']['status']} in "
        f"{s['one_row']['latency_ms']:.0f} ms; 8 rows: {s['batch_8']['status']} in {s['batch_8']['latency_ms']:.0f} ms; "
        f"labels = `distill predict`'s on {s['labels_equal_predict']}; a row missing its field: "
        f"{s['missing_field']['status']} | {s['wall_s']:.0f} s |",
    ]
    return "\n".join(lines)


def write_block(doc: Path, body: str) -> None:
    """The `deploy` block of `doc`; its heading and markers go right after the inference block if they are missing."""
    text = doc.read_text()
    if "<!-- deploy:begin -->" not in text:
        anchor = "<!-- inference:end -->\n"
        if anchor not in text:
            raise SystemExit(f"{doc}: no '<!-- inference:end -->' line to put the deploy block after")
        block = f"{anchor}\n{HEADING}\n\n{textwrap.fill(INTRO, 118)}\n\n<!-- deploy:begin -->\n<!-- deploy:end -->\n"
        doc.write_text(text.replace(anchor, block, 1))
    replace_block(doc, "deploy", body)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", type=Path, default=REPO, help="a repository where `make run` finished")
    ap.add_argument("--results", type=Path, default=RESULTS, help="JSONL the row is appended to")
    ap.add_argument("--render", action="store_true", help=f"write the latest row into {DOC.relative_to(REPO)}")
    ap.add_argument("--render-only", action="store_true", help="only --render, from --results")
    ap.add_argument("--doc", type=Path, default=DOC)
    args = ap.parse_args()
    if not args.render_only:
        row = measure(args.repo.resolve())
        args.results.parent.mkdir(parents=True, exist_ok=True)
        with args.results.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(summary(row))
        print(f"row appended to {args.results}")
    if args.render or args.render_only:
        rows = read_jsonl(args.results) if args.results.exists() else []
        if not rows:
            raise SystemExit(f"{args.results}: no rows to render")
        try:
            body = render(rows[-1])
        except ValueError as e:  # no provenance: no block
            raise SystemExit(f"{args.results}:{len(rows)}: refused: {e}") from None
        write_block(args.doc, body)
        print(f"deploy block of {args.doc} written")


if __name__ == "__main__":
    main()

"""Where a benchmark number came from: the provenance every row of benchmarks/results/*.jsonl carries (issue #41).

A row records the source commit and whether the checkout differed from it, a hash of the resolved params and the
overrides that made them, the CPU (model, the few flags the teacher's speed and precision follow), the machine's
size, torch threads, Python and torch versions, and the MLflow run the pipeline logged. `check_row` refuses a row
without them; the renderers call it, so a table cannot be made from a number nobody can trace.

Rows measured before this existed carry only the commit that added them to git, found from the file's history, and
the BACKFILLED mark: accepted, but flagged († in the tables). Backfilling is idempotent and never changes a value:

    .venv/bin/python benchmarks/provenance.py --backfill benchmarks/results/*.jsonl
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

BACKFILLED = "backfilled from git history (commit that added the row; params, CPU and MLflow run not recorded)"
FIELDS = (
    "commit",
    "dirty",
    "params_sha256",
    "overrides",
    "cpu_model",
    "cpu_flags",
    "threads",
    "mlflow_run_id",
    "machine",
    "python",
    "torch",
)
# What decides the teacher's precision and speed on a CPU (distill.core.devices.cpu_bf16_native, the AVX2 fallback).
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")
# Paths a benchmark writes itself (its rows, the rendered docs): a change there cannot change what it measures, so
# it does not make the checkout dirty.
OWN_OUTPUTS = ("benchmarks/results/", "docs/")
# What `make run` writes into a clone (DVC's outputs and .gitignore entries, the MLflow store): not a source change.
PIPELINE_OUTPUTS = ("data/work/", "metrics/", "plots/", "models/", "dvc.lock", "mlflow.db", "mlartifacts/", ".cache/")
# The measured values that identify a row in the file's history. Names (config, variant) are left out: some were
# renamed after the row was committed (student.jsonl's "default" became "zerogen 128/label (old default)").
FINGERPRINT = ("task", "seed", "student_accuracy", "teacher_accuracy", "wall_s", "val", "test", "seconds")


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout


def git_state(repo: Path, ignore: tuple[str, ...] = OWN_OUTPUTS + PIPELINE_OUTPUTS) -> dict[str, Any]:
    """HEAD's commit, and whether tracked or untracked (not ignored) files differ from it outside `ignore`."""
    status = _git(repo, "status", "--porcelain", "--untracked-files=all").splitlines()
    changed = [line[3:].split(" -> ")[-1].strip('"') for line in status]
    return {
        "commit": _git(repo, "rev-parse", "HEAD").strip(),
        "dirty": any(not path.startswith(ignore) for path in changed),
    }


def params_sha256(params: Path | str | dict) -> str:
    """sha256 of the params as canonical JSON (sorted keys): formatting and comments of params.yaml do not count."""
    if not isinstance(params, dict):
        params = yaml.safe_load(Path(params).read_text()) or {}
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()


def cpu_info(cpuinfo: str) -> tuple[str, list[str]]:
    """The CPU model and which of CPU_FLAGS it has, from the text of /proc/cpuinfo (first processor)."""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    flags = set(fields.get("flags", "").split())
    return fields.get("model name", platform.processor() or platform.machine()), [f for f in CPU_FLAGS if f in flags]


def machine(cores: int, meminfo: str) -> str:
    """'2 cores, 24 GiB' from the core count and the text of /proc/meminfo (no host name: rows are published)."""
    kb = next((int(line.split()[1]) for line in meminfo.splitlines() if line.startswith("MemTotal:")), None)
    return f"{cores} cores" + (f", {kb / 2**20:.0f} GiB" if kb else "")


def _read(path: str) -> str:
    return Path(path).read_text() if Path(path).exists() else ""


def _version(package: str) -> str | None:
    try:  # the installed version, without importing torch (seconds) in a process that may not need it
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def provenance(
    repo: Path,
    params: Path | str | dict,
    overrides: dict,
    threads: int,
    mlflow_run_id: str | None,
    state: dict | None = None,
) -> dict[str, Any]:
    """The provenance fields of one row. `state` is git_state(repo) taken when the code was copied for the run (a
    long benchmark must not record a commit made while it ran); `mlflow_run_id` is None only for a script that
    trains in-process and logs no MLflow run (student_attempts.py)."""
    model, flags = cpu_info(_read("/proc/cpuinfo"))
    return {
        **(state or git_state(repo)),
        "params_sha256": params_sha256(params),
        "overrides": dict(overrides),
        "cpu_model": model,
        "cpu_flags": flags,
        "threads": threads,
        "mlflow_run_id": mlflow_run_id,
        "machine": machine(os.cpu_count() or 1, _read("/proc/meminfo")),
        "python": platform.python_version(),
        "torch": _version("torch"),
    }


def mlflow_run_id(repo: Path) -> str | None:
    """The MLflow run the pipeline's register stage logged (data/work/registered.json), None without one."""
    registered = Path(repo) / "data/work/registered.json"
    return json.loads(registered.read_text()).get("run_id") if registered.exists() else None


def is_backfilled(row: dict) -> bool:
    return row.get("provenance") == BACKFILLED and bool(row.get("commit"))


def check_row(row: dict) -> None:
    """Raise ValueError, one line naming what is missing, unless the row has full provenance or the backfilled mark."""
    if is_backfilled(row):
        return
    missing = [f for f in FIELDS if f not in row or (row[f] is None and f != "mlflow_run_id")]
    if "provenance" in row and row["provenance"] != BACKFILLED:
        missing.append(f"provenance (unknown mark {row['provenance']!r})")
    if missing:
        name = "/".join(str(row.get(k)) for k in ("task", "seed", "config", "variant") if k in row)
        raise ValueError(f"row {name or '?'} has no provenance: missing {', '.join(missing)}")


def checked(rows: list[dict], source: str | Path = "rows") -> list[dict]:
    """The rows, after check_row on each (the error names the file and the line)."""
    for i, row in enumerate(rows, 1):
        try:
            check_row(row)
        except ValueError as e:
            raise ValueError(f"{source}:{i}: {e}") from None
    return rows


def seeds_cell(runs: list[dict]) -> str:
    """The seeds column: the run count, with † when (some of) the runs' provenance is backfilled."""
    old = sum(map(is_backfilled, runs))
    return f"{len(runs)}†" if old == len(runs) else f"{len(runs)} ({old}†)" if old else str(len(runs))


def footnote(rows: list[dict]) -> list[str]:
    """The line that explains †, for a table that shows backfilled rows."""
    if not any(map(is_backfilled, rows)):
        return []
    return [
        "",
        "† provenance backfilled from git history: the commit that added the run's row is recorded (`commit`); "
        "its params, CPU and MLflow run were not.",
    ]


def fingerprint(row: dict) -> tuple:
    return tuple((k, row[k]) for k in FINGERPRINT if k in row)


def added_in(repo: Path, path: Path) -> dict[tuple, str]:
    """Fingerprint -> the first commit whose version of `path` (renames followed) holds a row with it."""
    rel = path.resolve().relative_to(repo.resolve())
    log = _git(repo, "log", "--follow", "--format=commit %H", "--name-only", "--", str(rel)).splitlines()
    versions, commit = [], None
    for line in log:  # newest first; `--follow` with `--reverse` does not follow renames, hence reversed() below
        if line.startswith("commit "):
            commit = line.split()[1]
        elif line.strip():
            versions.append((commit, line.strip()))
    first: dict[tuple, str] = {}
    for commit, name in reversed(versions):
        try:
            text = _git(repo, "show", f"{commit}:{name}")
        except subprocess.CalledProcessError:  # the commit deleted the file
            continue
        for line in text.splitlines():
            if line.strip():
                first.setdefault(fingerprint(json.loads(line)), commit)
    return first


def backfill(repo: Path, path: Path) -> tuple[int, int]:
    """Mark the rows of `path` that have no provenance with the commit that added them; (backfilled, left without).
    Values are never changed: the fields are appended to the row."""
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    rows = [json.loads(line) for line in lines]
    prints = [fingerprint(r) for r in rows]
    if len(set(prints)) != len(prints):
        raise ValueError(f"{path}: two rows share a fingerprint {FINGERPRINT}: cannot tell their commits apart")
    first, done, left, out = added_in(repo, path), 0, 0, []
    for line, row, key in zip(lines, rows, prints):
        if "commit" in row or "provenance" in row:  # recorded (or marked) already: never overwritten
            pass
        elif key in first:  # appended to the line's text: every measured value keeps its exact characters
            line = line.rstrip()[:-1] + ", " + json.dumps({"commit": first[key], "provenance": BACKFILLED})[1:]
            done += 1
        else:  # not in git (measured but never committed): nothing honest to record
            left += 1
        out.append(line)
    path.write_text("".join(line + "\n" for line in out))
    return done, left


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backfill", nargs="+", type=Path, required=True, help="results files to mark from git history")
    args = ap.parse_args()
    repo = Path(__file__).resolve().parents[1]
    for path in args.backfill:
        done, left = backfill(repo, path)
        print(f"{path}: {done} rows backfilled, {left} without provenance")


if __name__ == "__main__":
    main()

"""Benchmark provenance (issue #41): what a row records, the refusal of a row without it, the git-history backfill of
the rows measured before it, and that every table rendered from rows into docs/benchmarks.md is what the rows give."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))  # the benchmark scripts import each other by bare name

import fewshot_prior  # noqa: E402
import labeller  # noqa: E402
import methods  # noqa: E402
import pipeline  # noqa: E402
import provenance as prov  # noqa: E402
import student  # noqa: E402
from runner import load_results  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
CPUINFO = """processor\t: 0
model name\t: Intel(R) Xeon(R) Platinum 8480C
flags\t\t: fpu sse2 avx avx2 avx512f avx512bw amx_tile amx_bf16

processor\t: 1
model name\t: Intel(R) Xeon(R) Platinum 8480C
flags\t\t: fpu sse2 avx avx2 avx512f avx512bw amx_tile amx_bf16
"""


def git(repo: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@localhost",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@localhost",
    }
    return subprocess.run(["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=True).stdout.strip()


def commit_all(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", message)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path):
    git(tmp_path, "init", "-q")
    (tmp_path / "params.yaml").write_text("seed: 0\ntrain:\n  epochs: 3\n")
    commit_all(tmp_path, "first")
    return tmp_path


def full_row(**extra) -> dict:
    return {
        "task": "sst2",
        "seed": 0,
        "config": "default",
        "commit": "a" * 40,
        "dirty": False,
        "params_sha256": "b" * 64,
        "overrides": {},
        "cpu_model": "cpu",
        "cpu_flags": ["avx2"],
        "threads": 1,
        "mlflow_run_id": "r1",
        "machine": "2 cores, 24 GiB",
        "python": "3.12.0",
        "torch": "2.5.0",
        **extra,
    }


# --- the fields, one by one ---------------------------------------------------------------------------------------


def test_cpu_info_reads_the_model_and_only_the_flags_that_matter():
    assert prov.cpu_info(CPUINFO) == ("Intel(R) Xeon(R) Platinum 8480C", ["avx2", "avx512f", "amx_bf16"])
    model, flags = prov.cpu_info("")  # no /proc/cpuinfo (macOS): the platform's name, no flags
    assert isinstance(model, str) and flags == []


def test_machine_names_cores_and_memory_but_no_host():
    assert prov.machine(2, "MemTotal:       24683772 kB\nMemFree: 1 kB\n") == "2 cores, 24 GiB"
    assert prov.machine(16, "") == "16 cores"


def test_params_hash_ignores_formatting_but_not_values(tmp_path):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("seed: 0\ntrain: {epochs: 3}\n")
    b.write_text("# a comment\ntrain:\n  epochs: 3\nseed: 0\n")
    assert prov.params_sha256(a) == prov.params_sha256(b) == prov.params_sha256({"train": {"epochs": 3}, "seed": 0})
    assert prov.params_sha256({"train": {"epochs": 4}, "seed": 0}) != prov.params_sha256(a)


def test_git_state_commit_and_dirty(repo):
    assert prov.git_state(repo) == {"commit": git(repo, "rev-parse", "HEAD"), "dirty": False}
    (repo / "benchmarks/results").mkdir(parents=True)
    (repo / "benchmarks/results/x.jsonl").write_text("{}\n")  # a benchmark's own rows: not a code change
    assert prov.git_state(repo)["dirty"] is False
    (repo / "new.py").write_text("x = 1\n")  # untracked, not ignored: copy_repo copies it into the run
    assert prov.git_state(repo)["dirty"] is True
    (repo / "new.py").unlink()
    (repo / "params.yaml").write_text("seed: 1\n")
    assert prov.git_state(repo)["dirty"] is True


def test_provenance_has_every_field_and_a_row_with_it_passes(repo):
    p = prov.provenance(repo, repo / "params.yaml", {"seed": 1}, 2, "abc123")
    assert set(p) == set(prov.FIELDS)
    assert p["commit"] == git(repo, "rev-parse", "HEAD") and p["dirty"] is False
    assert p["params_sha256"] == prov.params_sha256({"seed": 0, "train": {"epochs": 3}})
    assert (p["overrides"], p["threads"], p["mlflow_run_id"]) == ({"seed": 1}, 2, "abc123")
    assert set(p["cpu_flags"]) <= set(prov.CPU_FLAGS) and "cores" in p["machine"]
    prov.check_row({"task": "sst2", "seed": 0, **p})
    # a state taken earlier (when the code was copied) wins over HEAD now
    state = {"commit": "c" * 40, "dirty": True}
    assert prov.provenance(repo, {}, {}, 1, None, state)["commit"] == "c" * 40


def test_mlflow_run_id_from_registered_json(tmp_path):
    assert prov.mlflow_run_id(tmp_path) is None
    (tmp_path / "data/work").mkdir(parents=True)
    (tmp_path / "data/work/registered.json").write_text(json.dumps({"run_id": "f00", "version": "3"}))
    assert prov.mlflow_run_id(tmp_path) == "f00"


# --- check_row ----------------------------------------------------------------------------------------------------


def test_check_row_refuses_a_row_without_provenance_in_one_line():
    with pytest.raises(ValueError) as e:
        prov.check_row({"task": "sst2", "seed": 0, "config": "default", "student_accuracy": 0.8})
    assert "\n" not in str(e.value) and "sst2/0/default" in str(e.value)
    assert all(f in str(e.value) for f in prov.FIELDS)


def test_check_row_names_only_what_is_missing():
    row = full_row()
    del row["cpu_flags"], row["threads"]
    with pytest.raises(ValueError, match=r"missing cpu_flags, threads$"):
        prov.check_row(row)
    with pytest.raises(ValueError, match="missing commit"):
        prov.check_row(full_row(commit=None))


def test_check_row_mlflow_run_id_may_be_null_but_not_absent():
    prov.check_row(full_row(mlflow_run_id=None))  # a script that trains in-process logs no MLflow run
    row = full_row()
    del row["mlflow_run_id"]
    with pytest.raises(ValueError, match="mlflow_run_id"):
        prov.check_row(row)


def test_check_row_backfilled_mark():
    prov.check_row({"task": "sst2", "commit": "a" * 40, "provenance": prov.BACKFILLED})
    with pytest.raises(ValueError, match="commit"):  # the mark without the commit it stands for
        prov.check_row({"task": "sst2", "provenance": prov.BACKFILLED})
    with pytest.raises(ValueError, match="unknown mark"):
        prov.check_row({"task": "sst2", "commit": "a" * 40, "provenance": "trust me"})


def test_checked_names_the_file_and_line():
    with pytest.raises(ValueError, match=r"^r\.jsonl:2: row sst2/0 has no provenance"):
        prov.checked([full_row(), {"task": "sst2", "seed": 0}], "r.jsonl")


def test_seeds_cell_and_footnote():
    old = {"commit": "a" * 40, "provenance": prov.BACKFILLED}
    assert prov.seeds_cell([full_row(), full_row()]) == "2"
    assert prov.seeds_cell([old, old, old]) == "3†"
    assert prov.seeds_cell([old, full_row(), full_row()]) == "3 (1†)"
    assert prov.footnote([full_row()]) == []
    assert prov.footnote([full_row(), old])[1].startswith("† provenance backfilled")


# --- backfill -----------------------------------------------------------------------------------------------------


def test_backfill_finds_the_commit_that_added_each_row(repo):
    results = repo / "results"
    results.mkdir()
    a = {"task": "sst2", "seed": 0, "config": "default", "student_accuracy": 0.8123456789012345, "wall_s": 600}
    b = {"task": "sst2", "seed": 1, "config": "default", "student_accuracy": 0.79, "wall_s": 610}
    c = {"task": "ag_news", "seed": 0, "config": "default", "student_accuracy": 0.85, "wall_s": 900}
    (results / "old.jsonl").write_text(json.dumps(a) + "\n" + json.dumps(b) + "\n")
    first = commit_all(repo, "a and b")
    (results / "old.jsonl").write_text((results / "old.jsonl").read_text() + json.dumps(c) + "\n")
    second = commit_all(repo, "c")
    git(repo, "mv", "results/old.jsonl", "results/new.jsonl")  # renamed: history is followed
    commit_all(repo, "rename")
    renamed = {**a, "config": "zerogen (old default)"}  # a row edited later still dates from when it was added
    path = results / "new.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in (renamed, b, c)) + "\n")
    commit_all(repo, "rename a config")
    uncommitted = {"task": "rte", "seed": 0, "config": "default", "student_accuracy": 0.5, "wall_s": 1}
    path.write_text(path.read_text() + json.dumps(uncommitted) + "\n" + json.dumps(full_row()) + "\n")
    before = path.read_text().splitlines()

    assert prov.backfill(repo, path) == (3, 1)
    after = path.read_text().splitlines()
    rows = [json.loads(line) for line in after]
    assert [r.get("commit") for r in rows] == [first, first, second, None, "a" * 40]
    assert [r.get("provenance") for r in rows[:3]] == [prov.BACKFILLED] * 3
    assert all(new.startswith(old[:-1]) for old, new in zip(before, after))  # values kept to the character
    assert after[3:] == before[3:]  # not in git: left without; full provenance: untouched
    assert prov.backfill(repo, path) == (0, 1) and path.read_text().splitlines() == after  # idempotent


def test_backfill_refuses_rows_it_cannot_tell_apart(repo):
    path = repo / "r.jsonl"
    row = {"task": "sst2", "seed": 0, "student_accuracy": 0.8, "wall_s": 1}
    path.write_text(json.dumps({**row, "config": "a"}) + "\n" + json.dumps({**row, "config": "b"}) + "\n")
    commit_all(repo, "rows")
    with pytest.raises(ValueError, match="share a fingerprint"):
        prov.backfill(repo, path)


# --- the repository's rows and tables -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(RESULTS.glob("*.jsonl")), ids=lambda p: p.name)
def test_every_results_row_has_provenance_or_the_backfilled_mark(path):
    prov.checked(load_results(path), path.name)


def test_renderers_refuse_a_row_without_provenance():
    row = {
        "task": "sst2",
        "seed": 0,
        "config": "zerogen",
        "budget": 256,
        "student_accuracy": 0.7,
        "n_samples": 1,
        "wall_s": 60,
    }
    renders = (methods.render, methods.render_recipe_v1, student.render, labeller.render, fewshot_prior.render_rows)
    for render in renders:
        with pytest.raises(ValueError, match="has no provenance"):
            render([row])
    assert "| sst2 | zerogen | 1 |" in methods.render([{**row, **full_row(config="zerogen")}])


def doc_block(name: str) -> str:
    text = (REPO / "docs" / "benchmarks.md").read_text()
    begin, end = f"<!-- {name}:begin -->\n", f"\n<!-- {name}:end -->"
    return text[text.index(begin) + len(begin) : text.index(end)]


@pytest.mark.parametrize(
    "block, render, results",
    [
        ("methods", methods.render, "methods.jsonl"),
        ("methods-v1", methods.render_recipe_v1, "methods_recipe_v1.jsonl"),
        ("student", lambda rows, path: student.render(rows), "student.jsonl"),
        ("labeller", lambda rows, path: labeller.render(labeller.rows()), "labeller.jsonl"),
        ("fewshot_prior_rows", lambda rows, path: fewshot_prior.render_rows(rows), "fewshot_prior.jsonl"),
    ],
)
def test_docs_tables_are_rendered_from_the_rows(block, render, results):
    """Every cell of these blocks is computed from results rows: re-rendered, the block is verbatim in the docs."""
    path = RESULTS / results
    assert render(load_results(path), path) == doc_block(block)


def test_pipeline_renders_from_rows_with_provenance():
    stage = [60.0, 500.0]
    row = {
        "block": "pipeline",
        "task": "sst2",
        "method": "llkd",
        "teacher_accuracy": 0.81,
        "teacher_uncalibrated": 0.7,
        "student_accuracy": 0.82,
        "student_f1": 0.82,
        "val_student": 0.8,
        "val_teacher": 0.79,
        "data": "2500 pooled → 2500 pseudo-labelled",
        "n_train": 2516,
        "stages": {s: stage for s in pipeline.STAGES},
        "date": "2026-12-07",
        "cpu": "Xeon, bf16 native",
    }
    rows = [{**row, "task": "old"}, {**row, **full_row(), "student_accuracy": 0.5}, {**row, **full_row()}]
    latest = pipeline.latest(rows, "pipeline", ["sst2"])
    assert latest == [rows[2]]
    text = pipeline.render(latest)
    assert text.startswith("Measured 2026-12-07 on 2 cores, 24 GiB (Xeon, bf16 native)")
    assert "| sst2 | llkd | 0.8100 / 0.7000 | 0.8200 |" in text
    with pytest.raises(ValueError, match="has no provenance"):
        pipeline.render([row])

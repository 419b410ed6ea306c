"""`distill compare` on a real DVC queue, with a one-stage stand-in pipeline (seconds, no model): queueing, watching,
the report, a resumed comparison, and a queue worker that dies mid-run. The real pipeline under `distill compare`
runs in test_e2e.py."""

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from distill import compare as cmp


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


STAND_IN = """\
import json, os, sys, time, yaml
p = yaml.safe_load(open("params.yaml"))
time.sleep(2)  # long enough for compare to see it running
rows = open(f"data/tasks/{p['task']}/test.jsonl").read().splitlines()
if not rows[0].startswith("{"):
    sys.exit(f"error: data/tasks/{p['task']}/test.jsonl:1: not valid JSON")
os.makedirs("metrics", exist_ok=True)
acc = 0.5 + 0.1 * p["seed"] + (0.05 if p["method"] == "llkd" else 0) + 0.01 * p["train"]["epochs"]
json.dump({"student_accuracy": acc, "student_macro_f1": acc, "val_student_accuracy": acc, "teacher_accuracy": 0.7}, open("metrics/metrics.json", "w"))
json.dump({"n_samples": 10 * (p["seed"] + 1)}, open("metrics/data.json", "w"))
json.dump({"llm.data_prompt_tokens": 7, "llm.data_completion_tokens": 100}, open("metrics/generate.json", "w"))
"""


@pytest.fixture
def stand_in_project(tmp_path):
    """A git + DVC project with the real params.yaml and a one-stage dvc.yaml that writes the metrics files the
    real pipeline writes (and fails, as check_task would, on a task whose test.jsonl is not JSON)."""
    repo = tmp_path / "proj"
    (repo / "data" / "tasks").mkdir(parents=True)
    shutil.copy(REPO / "params.yaml", repo / "params.yaml")
    (repo / "stage.py").write_text(STAND_IN)
    (repo / "dvc.yaml").write_text(
        textwrap.dedent("""\
        stages:
          all:
            cmd: python stage.py
            deps:
              - stage.py
              - data/tasks/${task}
            params: [task, method, seed, comparison, train.epochs]
            metrics: [metrics/metrics.json, metrics/data.json, metrics/generate.json]
        """)
    )
    for task, first in (("good", '{"text": "fine", "label": "a"}'), ("broken", "oops")):
        (repo / "data" / "tasks" / task).mkdir()
        (repo / "data" / "tasks" / task / "test.jsonl").write_text(first + "\n")
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "DVC_NO_ANALYTICS": "1",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@localhost",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@localhost",
    }
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "init"]):
        subprocess.run(cmd, cwd=repo, env=env, check=True, capture_output=True)
    return repo, env


def distill(repo: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(Path(sys.executable).parent / "distill"), *args], cwd=repo, env=env, capture_output=True, text=True
    )


def test_compare_on_a_real_dvc_queue(stand_in_project):
    repo, env = stand_in_project
    (repo / "data" / "tasks" / "good" / "extra.jsonl").write_text("{}\n")  # untracked: queued copies would miss it
    r = distill(repo, env, "compare", "--tasks", "good,broken", "--methods", "llkd", "--seeds", "2", "--name", "t1")
    assert (
        r.returncode != 0 and "data/tasks/good: 1 file(s) git does not track (data/tasks/good/extra.jsonl" in r.stderr
    )
    assert not (repo / "reports").exists()  # nothing queued, nothing written
    (repo / "data" / "tasks" / "good" / "extra.jsonl").unlink()

    args = [
        "compare",
        "--tasks",
        "good,broken",
        "--methods",
        "llkd",
        "--seeds",
        "2",
        "--jobs",
        "2",
        "--name",
        "t1",
        "--poll",
        "1",
        "-S",
        "train.epochs=2",
        "-S",
        "teacher.api_key_env=",
        "-S",
        "llkd.selection=all",
    ]
    r = distill(repo, env, *args)
    assert r.returncode == 1 and "2 of 4 runs failed" in r.stderr, r.stdout + r.stderr
    assert "4 runs (4 newly queued)" in r.stdout and "4/4 done (2 failed)" in r.stdout
    assert " running, " in r.stdout, r.stdout  # watched while the queue ran, not only after
    out = json.loads((repo / "reports" / "compare.json").read_text())
    ok = {(x["task"], x["method"], x["seed"]): x for x in out["runs"] if x["state"] == "success"}
    assert set(ok) == {("good", "llkd", s) for s in (0, 1)}
    assert ok[("good", "llkd", 1)]["student_accuracy"] == pytest.approx(0.67)  # seed, method and -S all reached the run
    shown = cmp.experiments(
        json.loads(
            subprocess.run(
                ["dvc", "exp", "show", "--json"], cwd=repo, env=env, capture_output=True, text=True, check=True
            ).stdout
        )
    )
    params = shown["t1-good-llkd-s1"]["params"]
    assert (
        params["teacher"]["api_key_env"] is None
        and params["llkd"]["selection"] == "all"
        and params["comparison"] == "t1"
    )
    assert ok[("good", "llkd", 0)]["llm_tokens"] == 107 and ok[("good", "llkd", 1)]["n_samples"] == 20
    failed = [x for x in out["runs"] if x["state"] == "failed"]
    assert len(failed) == 2 and all(x["error"] == "all: data/tasks/broken/test.jsonl:1: not valid JSON" for x in failed)
    md = (repo / "reports" / "compare.md").read_text()
    assert "| good | llkd | 2/2 | 0.620 ± 0.071 |" in md and "| broken | llkd | 0/2 | – |" in md
    assert (repo / "reports" / "compare.png").read_bytes()[:4] == b"\x89PNG"
    shown = subprocess.run(
        cmd := ["bash", "-c", cmp.SHOW_CMD], cwd=repo, env=env, capture_output=True, text=True, check=True
    ).stdout
    assert "t1-good-llkd-s1" in shown and "student_accuracy" in shown, cmd

    # Same name again: finished runs are kept, only the failed ones are queued again (and fail again).
    r = distill(repo, env, *args)
    assert "4 runs (2 newly queued)" in r.stdout and r.returncode == 1, r.stdout + r.stderr


def processes_under(folder: Path) -> list[int]:
    """Pids whose working directory is in `folder` (a queue worker and the run it started)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and str(folder) in os.readlink(proc / "cwd"):
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


def hanging_stage(repo: Path, fast: Path) -> None:
    """The stand-in stage sleeps 10 min until `fast` exists (outside the repository: the queued copy sees it, and it
    can appear between runs), then 2 s."""
    stage = (
        (repo / "stage.py")
        .read_text()
        .replace("time.sleep(2)", f"time.sleep(2 if os.path.exists({str(fast)!r}) else 600)")
    )
    (repo / "stage.py").write_text(stage)
    git(repo, "commit", "-qam", "a stage that hangs until told otherwise")


def crash_mid_run(repo: Path, env: dict, spare: int | None = None) -> None:
    """Once DVC lists the run as running and its stage has started, SIGKILL every process working in the repository
    (the queue worker and the run), as a crash would; `spare` lives."""
    for _ in range(120):
        if (
            "Running"
            in subprocess.run(["dvc", "queue", "status"], cwd=repo, env=env, capture_output=True, text=True).stdout
        ):
            break
        time.sleep(1)
    time.sleep(2)  # the run's stage has started
    for pid in processes_under(repo):
        if pid != spare:
            os.kill(pid, signal.SIGKILL)


@pytest.mark.skipif(not Path("/proc/self/cwd").exists(), reason="finds the queue's processes through /proc")
def test_a_run_whose_worker_died_is_queued_again_on_resume(stand_in_project, tmp_path):
    """A crash or a reboot kills the queue worker mid-run: DVC goes on listing the run as running, with no worker to
    ever finish it. Resuming the comparison marks it failed and queues it again, instead of watching it forever."""
    repo, env = stand_in_project
    fast = tmp_path / "fast"
    hanging_stage(repo, fast)
    args = ["compare", "--tasks", "good", "--methods", "llkd", "--seeds", "1", "--name", "t2", "--poll", "1"]
    r = distill(repo, env, *args, "--no-wait")
    assert r.returncode == 0, r.stdout + r.stderr
    crash_mid_run(repo, env)
    status = subprocess.run(["dvc", "queue", "status"], cwd=repo, env=env, capture_output=True, text=True).stdout
    assert "Running" in status and "0 active, 0 idle" in status, status  # the orphan, as DVC lists it

    fast.touch()
    r = distill(repo, env, *args)
    assert r.returncode == 0 and "1 runs (1 newly queued)" in r.stdout, r.stdout + r.stderr
    out = json.loads((repo / "reports" / "compare.json").read_text())
    epochs = yaml.safe_load((repo / "params.yaml").read_text())["train"]["epochs"]
    assert [x["state"] for x in out["runs"]] == ["success"] and out["runs"][0]["student_accuracy"] == pytest.approx(
        0.55 + 0.01 * epochs
    )


@pytest.mark.skipif(not Path("/proc/self/cwd").exists(), reason="finds the queue's processes through /proc")
def test_a_run_the_queue_loses_while_watched_is_queued_again(stand_in_project, tmp_path):
    """What hung a CI run for 90 min: DVC's queue lost a run (its worker gone before the run's info file was
    written), so it stayed "running" and every `dvc exp show` failed. Made here on purpose: the worker is killed and
    the run's folder under .dvc/tmp/exps/run removed while `distill compare` watches. Compare queues it again once."""
    repo, env = stand_in_project
    # Well above a queue worker's start on loaded cores (4 s idle, 10+ s loaded): a shorter window would take a worker
    # that is still starting for a lost one (compare starts one more, at most once per run, then reports the run)
    env = {**env, "DISTILL_ORPHAN_S": "20"}
    fast = tmp_path / "fast"
    hanging_stage(repo, fast)
    args = ["compare", "--tasks", "good", "--methods", "llkd", "--seeds", "1", "--name", "t3", "--poll", "1"]
    with open(tmp_path / "compare.log", "w") as log:
        watcher = subprocess.Popen(
            [str(Path(sys.executable).parent / "distill"), *args],
            cwd=repo,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        crash_mid_run(repo, env, spare=watcher.pid)
        for run in (repo / ".dvc" / "tmp" / "exps" / "run").iterdir():
            shutil.rmtree(run)
        shown = subprocess.run(["dvc", "exp", "show", "--json"], cwd=repo, env=env, capture_output=True, text=True)
        assert shown.returncode != 0 and "No such file or directory" in shown.stderr, (
            shown.stderr
        )  # the state CI hung on
        fast.touch()
        code = watcher.wait(timeout=300)
    finally:
        watcher.kill()
    said = (tmp_path / "compare.log").read_text()
    assert code == 0 and "1 run(s) DVC's queue lost (listed as running, no worker alive) queued again" in said, said
    out = json.loads((repo / "reports" / "compare.json").read_text())
    assert [x["state"] for x in out["runs"]] == ["success"], said

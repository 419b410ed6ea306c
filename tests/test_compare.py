"""`distill compare`: the pure parts (names, parsing, DVC's JSON, failure lines, the table, the plot) and the
orchestration on a real DVC queue with a one-stage stand-in pipeline (seconds, no model). The real pipeline under
`distill compare` is in the e2e test."""
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
from distill import report
from distill.io import DistillError


def test_names_seeds_and_overrides():
    assert cmp.Combo("c1", "my task.v2", "gold", 3).name == "c1-my-task-v2-gold-s3"
    assert cmp.parse_seeds("3") == [0, 1, 2] and cmp.parse_seeds("0,7,42") == [0, 7, 42] and cmp.parse_seeds("7,") == [7]
    for bad in ("0", "x", "1,y"):
        with pytest.raises(DistillError, match="--seeds"):
            cmp.parse_seeds(bad)
    assert cmp.parse_overrides(["train.epochs=2", "teacher.api_key_env=", "llkd.selection=all"]) == {
        "train.epochs": 2, "teacher.api_key_env": None, "llkd.selection": "all"}
    with pytest.raises(DistillError, match="key=value"):
        cmp.parse_overrides(["train.epochs"])
    with pytest.raises(DistillError, match="set by compare"):
        cmp.parse_overrides(["seed=4"])
    assert cmp.parse_list("sst2, ag_news,sst2", "--tasks") == ["sst2", "ag_news"]


def test_bad_override_is_refused_before_anything_is_queued():
    combos = cmp.plan("c", ["sst2"], ["zerogen", "llkd"], [0])
    cmp.check_params(REPO / "params.yaml", {"train.epochs": 2}, combos)
    with pytest.raises(DistillError, match=r"train\.epochs"):
        cmp.check_params(REPO / "params.yaml", {"train.epochs": 0}, combos)
    with pytest.raises(DistillError, match="no section 'trian'"):
        cmp.check_params(REPO / "params.yaml", {"trian.epochs": 2}, combos)
    with pytest.raises(DistillError, match="trian"):
        cmp.check_params(REPO / "params.yaml", {"trian": 2}, combos)


def test_experiments_from_dvc_exp_show_json():
    shown = [{"rev": "workspace", "experiments": None},
             {"rev": "abc", "experiments": [
                 {"revs": [{"name": "c-a-zerogen-s0", "data": {"params": {"params.yaml": {"data": {"seed": 0}}},
                                                               "metrics": {"metrics/metrics.json": {"data": {"student_accuracy": 0.8}},
                                                                           "metrics/x.json": {"error": {"type": "FileNotFoundError"}}}}}],
                  "name": "c-a-zerogen-s0", "executor": {"state": "success", "local": {"log": "/l/1.out"}}},
                 {"revs": [{"name": "c-b-zerogen-s0", "data": {}, "error": {"msg": "Experiment run failed"}}],
                  "name": "c-b-zerogen-s0", "executor": None},
                 {"revs": [{"name": "c-a-gold-s0", "data": None}], "name": "c-a-gold-s0", "executor": {"state": "queued"}}]}]
    got = cmp.experiments(shown)
    assert got["c-a-zerogen-s0"] == {"state": "success", "params": {"seed": 0}, "log": "/l/1.out",
                                     "metrics": {"metrics/metrics.json": {"student_accuracy": 0.8}}}
    assert got["c-b-zerogen-s0"]["state"] == "failed" and got["c-a-gold-s0"]["state"] == "queued"


def test_failure_reason_names_the_stage_and_the_error():
    log = textwrap.dedent("""\
        Reproducing experiment 'c-bad-zerogen-s0'
        Running stage 'check_task':
        > distill check-task --task-dir data/tasks/bad
        error: data/tasks/bad/test.jsonl:2: not valid JSON (Expecting value)
        ERROR: failed to reproduce 'check_task': failed to run: distill check-task, exited with 2
        """)
    assert cmp.failure_reason(log) == "check_task: data/tasks/bad/test.jsonl:2: not valid JSON (Expecting value)"
    assert cmp.failure_reason("ERROR: failed to reproduce 'train': exited with -9\n") == "failed to reproduce 'train': exited with -9"
    assert cmp.failure_reason("") == "no log"


def test_table_plot_and_progress(tmp_path):
    runs = [{"name": f"c-t-{m}-s{s}", "task": "t", "method": m, "seed": s, "state": "success",
             "student_accuracy": 0.7 + 0.1 * s, "student_macro_f1": 0.6, "val_student_accuracy": 0.65,
             "teacher_accuracy": 0.75, "n_samples": 100, "llm_tokens": 5000, "wall_min": 2.0} for m in ("zerogen", "gold") for s in (0, 1)]
    runs.append({"name": "c-u-zerogen-s0", "task": "u", "method": "zerogen", "seed": 0, "state": "failed", "error": "check_task: boom"})
    md = report.markdown("c", "distill compare --tasks t,u", runs, ["t", "u"], ["zerogen", "gold"], {"t": "models:/distill-t@champion = version 3"},
                         cmp.SHOW_CMD)
    assert "| t | zerogen | 2/2 | 0.750 ± 0.071 | 0.600 ± 0.000 |" in md
    assert "| u | zerogen | 0/1 | – |" in md and "| u | gold | 0/0 |" in md
    assert "`c-u-zerogen-s0` (u, zerogen, seed 0): check_task: boom" in md and "@champion = version 3" in md
    report.plot(tmp_path / "c.png", runs, ["t", "u"], ["zerogen", "gold"])
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    states = {"a": "success", "b": "failed", "c": "running", "d": "queued", "e": "queued"}
    assert report.progress(states, [], 2) == "2/5 done (1 failed), 1 running, 2 queued, ETA after the first run ends"
    assert report.progress(states, [600.0], 2).endswith("ETA ~12 min")
    assert report.progress({"a": "success"}, [60.0], 1) == "1/1 done (0 failed), 0 running, 0 queued"


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
    (repo / "dvc.yaml").write_text(textwrap.dedent("""\
        stages:
          all:
            cmd: python stage.py
            deps:
              - stage.py
              - data/tasks/${task}
            params: [task, method, seed, comparison, train.epochs]
            metrics: [metrics/metrics.json, metrics/data.json, metrics/generate.json]
        """))
    for task, first in (("good", '{"text": "fine", "label": "a"}'), ("broken", "oops")):
        (repo / "data" / "tasks" / task).mkdir()
        (repo / "data" / "tasks" / task / "test.jsonl").write_text(first + "\n")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@localhost", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@localhost"}
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "init"]):
        subprocess.run(cmd, cwd=repo, env=env, check=True, capture_output=True)
    return repo, env


def distill(repo: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(sys.executable).parent / "distill"), *args], cwd=repo, env=env, capture_output=True, text=True)


def test_compare_on_a_real_dvc_queue(stand_in_project):
    repo, env = stand_in_project
    (repo / "data" / "tasks" / "good" / "extra.jsonl").write_text("{}\n")  # untracked: queued copies would miss it
    r = distill(repo, env, "compare", "--tasks", "good,broken", "--methods", "llkd", "--seeds", "2", "--name", "t1")
    assert r.returncode != 0 and "data/tasks/good: 1 file(s) git does not track (data/tasks/good/extra.jsonl" in r.stderr
    assert not (repo / "reports").exists()  # nothing queued, nothing written
    (repo / "data" / "tasks" / "good" / "extra.jsonl").unlink()

    args = ["compare", "--tasks", "good,broken", "--methods", "llkd", "--seeds", "2", "--jobs", "2", "--name", "t1",
            "--poll", "1", "-S", "train.epochs=2", "-S", "teacher.api_key_env=", "-S", "llkd.selection=all"]
    r = distill(repo, env, *args)
    assert r.returncode == 1 and "2 of 4 runs failed" in r.stderr, r.stdout + r.stderr
    assert "4 runs (4 newly queued)" in r.stdout and "4/4 done (2 failed)" in r.stdout
    assert " running, " in r.stdout, r.stdout  # watched while the queue ran, not only after
    out = json.loads((repo / "reports" / "compare.json").read_text())
    ok = {(x["task"], x["method"], x["seed"]): x for x in out["runs"] if x["state"] == "success"}
    assert set(ok) == {("good", "llkd", s) for s in (0, 1)}
    assert ok[("good", "llkd", 1)]["student_accuracy"] == pytest.approx(0.67)  # seed, method and -S all reached the run
    shown = cmp.experiments(json.loads(subprocess.run(["dvc", "exp", "show", "--json"], cwd=repo, env=env, capture_output=True,
                                                      text=True, check=True).stdout))
    params = shown["t1-good-llkd-s1"]["params"]
    assert params["teacher"]["api_key_env"] is None and params["llkd"]["selection"] == "all" and params["comparison"] == "t1"
    assert ok[("good", "llkd", 0)]["llm_tokens"] == 107 and ok[("good", "llkd", 1)]["n_samples"] == 20
    failed = [x for x in out["runs"] if x["state"] == "failed"]
    assert len(failed) == 2 and all(x["error"] == "all: data/tasks/broken/test.jsonl:1: not valid JSON" for x in failed)
    md = (repo / "reports" / "compare.md").read_text()
    assert "| good | llkd | 2/2 | 0.620 ± 0.071 |" in md and "| broken | llkd | 0/2 | – |" in md
    assert (repo / "reports" / "compare.png").read_bytes()[:4] == b"\x89PNG"
    shown = subprocess.run(cmd := ["bash", "-c", cmp.SHOW_CMD], cwd=repo, env=env, capture_output=True, text=True, check=True).stdout
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


@pytest.mark.skipif(not Path("/proc/self/cwd").exists(), reason="finds the queue's processes through /proc")
def test_a_run_whose_worker_died_is_queued_again_on_resume(stand_in_project, tmp_path):
    """A crash or a reboot kills the queue worker mid-run: DVC goes on listing the run as running, with no worker to
    ever finish it. Resuming the comparison marks it failed and queues it again, instead of watching it forever."""
    repo, env = stand_in_project
    fast = tmp_path / "fast"  # outside the repository: the queued copy sees it, and it can appear between runs
    stage = (repo / "stage.py").read_text().replace("time.sleep(2)", f"time.sleep(2 if os.path.exists({str(fast)!r}) else 600)")
    (repo / "stage.py").write_text(stage)
    git(repo, "commit", "-qam", "a stage that hangs until told otherwise")
    args = ["compare", "--tasks", "good", "--methods", "llkd", "--seeds", "1", "--name", "t2", "--poll", "1"]
    r = distill(repo, env, *args, "--no-wait")
    assert r.returncode == 0, r.stdout + r.stderr
    for _ in range(120):
        if "Running" in subprocess.run(["dvc", "queue", "status"], cwd=repo, env=env, capture_output=True, text=True).stdout:
            break
        time.sleep(1)
    time.sleep(2)  # the run's stage has started
    for pid in processes_under(repo):
        os.kill(pid, signal.SIGKILL)
    status = subprocess.run(["dvc", "queue", "status"], cwd=repo, env=env, capture_output=True, text=True).stdout
    assert "Running" in status and "0 active, 0 idle" in status, status  # the orphan, as DVC lists it

    fast.touch()
    r = distill(repo, env, *args)
    assert r.returncode == 0 and "1 runs (1 newly queued)" in r.stdout, r.stdout + r.stderr
    out = json.loads((repo / "reports" / "compare.json").read_text())
    epochs = yaml.safe_load((repo / "params.yaml").read_text())["train"]["epochs"]
    assert [x["state"] for x in out["runs"]] == ["success"] and out["runs"][0]["student_accuracy"] == pytest.approx(0.55 + 0.01 * epochs)


def shown_running() -> str:
    """`dvc exp show --json` with one experiment, c-t-zerogen-s0, that DVC calls running."""
    return json.dumps([{"experiments": [{"name": "c-t-zerogen-s0", "revs": [{"name": "c-t-zerogen-s0", "data": {}}],
                                         "executor": {"state": "running"}}]}])


def test_an_orphaned_run_is_reset_only_when_no_worker_is_alive(monkeypatch, tmp_path):
    """The resume rule's branches: a live worker's running run is left alone; one `dvc queue kill` cannot reset is
    left to `watch` (and said); a reset one is removed and queued again."""
    alive, kill_ok, calls = [1], [True], []

    def fake_dvc(root, *args, timeout=None):
        calls.append(args)
        if args[:2] == ("queue", "status"):
            return f"Worker status: {alive[0]} active, 0 idle\n"
        if args[:2] == ("queue", "kill") and not kill_ok[0]:
            raise DistillError("dvc queue kill c-t-zerogen-s0 ...: ERROR: cannot kill")
        if args[:2] == ("queue", "remove"):  # a failed run is no longer in the queue: DVC says so, and that is fine
            raise DistillError("dvc queue remove c-t-zerogen-s0 ...: ERROR: not found")
        if args[:2] == ("exp", "show"):
            return shown_running()
        return ""

    monkeypatch.setattr(cmp, "dvc", fake_dvc)
    logged = []
    c = cmp.Comparison(tmp_path, "c", ["t"], ["zerogen"], [0], {}, 1, tmp_path / "r", "distill compare", log=logged.append)
    manifest = {"base": "HEAD", "timing": {"c-t-zerogen-s0": {"start": 1.0}}}
    assert c.queue(manifest) == 0 and not any(a[:2] == ("queue", "kill") for a in calls)  # a worker is on it
    alive[0], kill_ok[0] = 0, False
    assert c.queue(manifest) == 0 and "was not reset" in logged[-1]
    kill_ok[0] = True
    calls.clear()
    assert c.queue(manifest) == 1
    assert [a[:3] for a in calls if a[0] != "exp" or a[1] != "show"] == [
        ("queue", "status"), ("queue", "kill", "c-t-zerogen-s0"), ("queue", "remove", "c-t-zerogen-s0"),
        ("exp", "remove", "c-t-zerogen-s0"), ("exp", "run", "--queue")]
    assert manifest["timing"] == {}


def test_a_hung_exp_show_is_asked_again(monkeypatch, tmp_path):
    """`dvc exp show` once hung on a lock as a queue worker finished: each call is bounded and retried."""
    calls = []

    def fake_dvc(root, *args, timeout=None):
        calls.append(timeout)
        if len(calls) == 1:
            raise DistillError("dvc exp show gave no answer in 180 s")
        return shown_running()

    monkeypatch.setattr(cmp, "dvc", fake_dvc)
    logged = []
    c = cmp.Comparison(tmp_path, "c", ["t"], ["zerogen"], [0], {}, 1, tmp_path / "r", "distill compare", log=logged.append)
    assert c.show({"base": "HEAD"})["c-t-zerogen-s0"]["state"] == "running"
    assert calls == [180, 180] and "asking again" in logged[0]
    # a queued run's temporary copy appearing or going away: asked again without a word
    calls.clear()
    logged.clear()

    def copy_in_flux(root, *args, timeout=None):
        if not calls:
            calls.append(timeout)
            raise DistillError("dvc exp show --json ...: ERROR: failed to show experiments - directory "
                               "'.dvc/tmp/exps/tmpx/.dvc' does not exist")
        return fake_dvc(root, *args, timeout=timeout)

    monkeypatch.setattr(cmp.time, "sleep", lambda s: None)
    monkeypatch.setattr(cmp, "dvc", copy_in_flux)
    assert c.show({"base": "HEAD"})["c-t-zerogen-s0"]["state"] == "running" and logged == [] and len(calls) == 2


def test_a_run_left_running_with_no_worker_alive_is_reported_not_waited_for(monkeypatch, tmp_path):
    """DVC's queue once left a failed run "running" after both workers had shut down (the real-queue test above hung
    on it): `watch` gives such runs up after ORPHAN_S without a worker, and says so, instead of polling forever."""
    alive = [1]

    def fake_dvc(root, *args, timeout=None):
        if args[:2] == ("queue", "status"):
            return f"Task  Name  Created  Status\n\nWorker status: {alive[0]} active, 0 idle\n"
        return shown_running()

    clock = [1000.0]
    monkeypatch.setattr(cmp, "dvc", fake_dvc)
    monkeypatch.setattr(cmp.time, "time", lambda: clock[0])

    def sleep(s):
        clock[0] += s
        if clock[0] > 1000 + 10 * cmp.ORPHAN_S:
            alive[0] = 0  # the workers go away only after a long wait: a live worker is never given up on
        assert clock[0] < 1000 + 20 * cmp.ORPHAN_S, "watch never gave up"

    monkeypatch.setattr(cmp.time, "sleep", sleep)
    logged = []
    c = cmp.Comparison(tmp_path, "c", ["t"], ["zerogen"], [0], {}, 1, tmp_path / "r", "distill compare", log=logged.append)
    known = c.watch({"base": "HEAD", "timing": {}}, poll_s=5)
    assert known["c-t-zerogen-s0"]["state"] == "failed" and known["c-t-zerogen-s0"]["orphaned"]
    assert 1000 + 11 * cmp.ORPHAN_S <= clock[0] <= 1000 + 12 * cmp.ORPHAN_S  # ORPHAN_S after the last worker left
    assert any("no queue worker alive" in line for line in logged)
    row = cmp.run_row(c.combos[0], known["c-t-zerogen-s0"], {})
    assert row["state"] == "failed" and "no queue worker alive" in row["error"]
    log = tmp_path / "run.out"  # a log that says why it stopped wins over the generic reason
    log.write_text("error: data/tasks/t/test.jsonl:1: not valid JSON\nERROR: failed to reproduce 'all': exited with 1\n")
    row = cmp.run_row(c.combos[0], {**known["c-t-zerogen-s0"], "log": str(log)}, {})
    assert row["error"] == "all: data/tasks/t/test.jsonl:1: not valid JSON"


def test_the_setfit_reference_is_planned_and_queued_with_its_own_recipe(monkeypatch, tmp_path):
    """`setfit` in --methods: the `labelled` method on fewshot.jsonl with the setfit recipe, whatever -S says about
    the recipe for the other methods; not planned for a pair task (SetFit embeds one text)."""
    assert cmp.setfit_unfit(REPO, ["sst2", "rte", "svamp"]) == ["rte", "svamp"]
    combos = cmp.plan("c", ["sst2", "rte"], ["llkd", "setfit"], [0, 1], no_setfit=["rte"])
    assert [(c.task, c.method) for c in combos] == [("sst2", "llkd")] * 2 + [("sst2", "setfit")] * 2 + [("rte", "llkd")] * 2
    assert combos[2].params() == {"task": "sst2", "method": "labelled", "seed": 0, "comparison": "c",
                                  "labelled.splits": ["fewshot"], "train.recipe": "setfit"}
    cmp.check_params(REPO / "params.yaml", {"train.recipe": "finetune"}, combos)  # both methods' params validate
    calls = []
    monkeypatch.setattr(cmp, "dvc", lambda root, *args, **kw: calls.append(args) or "[]")
    comparison = cmp.Comparison(REPO, "c", ["sst2"], ["llkd", "setfit"], [0], {"train.recipe": "finetune", "train.epochs": 2},
                                1, tmp_path, "distill compare ...")
    assert comparison.queue({"base": "HEAD", "timing": {}}) == 2
    queued = {a[a.index("-n") + 1]: [x for x in a if x != "-S"] for a in calls if a[:3] == ("exp", "run", "--queue")}
    assert queued["c-sst2-llkd-s0"] == ["exp", "run", "--queue", "-n", "c-sst2-llkd-s0", 'train.recipe="finetune"', "train.epochs=2",
                                        "task=sst2", "method=llkd", "seed=0", "comparison=c"]
    ref = queued["c-sst2-setfit-s0"]
    assert "train.recipe=setfit" in ref and 'labelled.splits=["fewshot"]' in ref and "method=labelled" in ref
    assert "train.epochs=2" in ref and not any(x.startswith("train.recipe=\"") for x in ref)  # -S reaches it, not its recipe

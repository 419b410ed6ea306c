"""`distill compare`'s queue rules against a fake `dvc` (compare_queue.dvc patched; a clock that moves only when
`watch` sleeps): a resumed comparison's orphans, a hung `dvc exp show`, runs left running or queued with no worker
alive, a worker that starts late, a run the queue lost queued again once, and DISTILL_ORPHAN_S. The pure parts:
test_compare.py; on a real DVC queue: test_compare_queue.py."""

import json

import pytest

from distill import compare as cmp
from distill import compare_queue
from distill.core.io import DistillError


def queue_status(state: str, alive: int) -> str:
    """`dvc queue status` as DVC prints it, listing c-t-zerogen-s0 in `state`."""
    return (
        f"Task     Name            Created    Status\nd8b7ba1  c-t-zerogen-s0  08:35 AM   {state}\n\n"
        f"Worker status: {alive} active, 0 idle\n"
    )


def shown_running() -> str:
    """`dvc exp show --json` with one experiment, c-t-zerogen-s0, that DVC calls running."""
    return json.dumps(
        [
            {
                "experiments": [
                    {
                        "name": "c-t-zerogen-s0",
                        "revs": [{"name": "c-t-zerogen-s0", "data": {}}],
                        "executor": {"state": "running"},
                    }
                ]
            }
        ]
    )


def test_an_orphaned_run_is_reset_only_when_no_worker_is_alive(monkeypatch, tmp_path):
    """The resume rule's branches: a live worker's running run is left alone; one `dvc queue kill` cannot reset is
    left to `watch` (and said); a reset one is removed and queued again."""
    alive, kill_ok, calls = [1], [True], []

    def fake_dvc(root, *args, timeout=None):
        calls.append(args)
        if args[:2] == ("queue", "status"):
            return queue_status("Running", alive[0])
        if args[:2] == ("queue", "kill") and not kill_ok[0]:
            raise DistillError("dvc queue kill c-t-zerogen-s0 ...: ERROR: cannot kill")
        if args[:2] == ("queue", "remove"):  # a failed run is no longer in the queue: DVC says so, and that is fine
            raise DistillError("dvc queue remove c-t-zerogen-s0 ...: ERROR: not found")
        if args[:2] == ("exp", "show"):
            return shown_running()
        return ""

    monkeypatch.setattr(compare_queue, "dvc", fake_dvc)
    logged = []
    c = cmp.Comparison(
        tmp_path, "c", ["t"], ["zerogen"], [0], {}, 1, tmp_path / "r", "distill compare", log=logged.append
    )
    manifest = {"base": "HEAD", "timing": {"c-t-zerogen-s0": {"start": 1.0}}}
    assert c.queue(manifest) == 0 and not any(a[:2] == ("queue", "kill") for a in calls)  # a worker is on it
    alive[0], kill_ok[0] = 0, False
    assert c.queue(manifest) == 0 and "was not reset" in logged[-1]
    kill_ok[0] = True
    calls.clear()
    assert c.queue(manifest) == 1
    assert [a[:3] for a in calls if a[0] != "exp" or a[1] != "show"] == [
        ("queue", "status"),
        ("queue", "kill", "c-t-zerogen-s0"),
        ("queue", "remove", "c-t-zerogen-s0"),
        ("exp", "remove", "c-t-zerogen-s0"),
        ("exp", "run", "--queue"),
    ]
    assert manifest["timing"] == {}


def test_a_hung_exp_show_is_asked_again(monkeypatch, tmp_path):
    """`dvc exp show` once hung on a lock as a queue worker finished: each call is bounded and retried."""
    calls = []

    def fake_dvc(root, *args, timeout=None):
        calls.append(timeout)
        if len(calls) == 1:
            raise DistillError("dvc exp show gave no answer in 180 s")
        return shown_running()

    monkeypatch.setattr(compare_queue, "dvc", fake_dvc)
    logged = []
    c = cmp.Comparison(
        tmp_path, "c", ["t"], ["zerogen"], [0], {}, 1, tmp_path / "r", "distill compare", log=logged.append
    )
    assert c.show({"base": "HEAD"})["c-t-zerogen-s0"]["state"] == "running"
    assert calls == [180, 180] and "asking again" in logged[0]
    # a queued run's temporary copy appearing or going away: asked again without a word
    calls.clear()
    logged.clear()

    def copy_in_flux(root, *args, timeout=None):
        if not calls:
            calls.append(timeout)
            raise DistillError(
                "dvc exp show --json ...: ERROR: failed to show experiments - directory "
                "'.dvc/tmp/exps/tmpx/.dvc' does not exist"
            )
        return fake_dvc(root, *args, timeout=timeout)

    monkeypatch.setattr(cmp.time, "sleep", lambda s: None)
    monkeypatch.setattr(compare_queue, "dvc", copy_in_flux)
    assert c.show({"base": "HEAD"})["c-t-zerogen-s0"]["state"] == "running" and logged == [] and len(calls) == 2


def fake_clock(monkeypatch, fake_dvc, tick=None) -> list[float]:
    """`dvc` faked, and a clock that moves only when `watch` sleeps: a test fails instead of polling forever."""
    clock = [1000.0]
    monkeypatch.setattr(compare_queue, "dvc", fake_dvc)
    monkeypatch.setattr(cmp.time, "time", lambda: clock[0])

    def sleep(s):
        clock[0] += s
        if tick:
            tick(clock[0])
        assert clock[0] < 1000 + 20 * compare_queue.ORPHAN_S, "watch never gave up"

    monkeypatch.setattr(cmp.time, "sleep", sleep)
    return clock


def test_a_run_left_running_with_no_worker_alive_is_reported_not_waited_for(monkeypatch, tmp_path):
    """DVC's queue once left a failed run "running" after both workers had shut down (the real-queue test in
    test_compare_queue.py hung on it): `watch` gives such runs up after ORPHAN_S without a worker, and says so,
    instead of polling forever. (Here `dvc queue status` does not list it, so `dvc queue kill` is not tried.)"""
    alive = [1]

    def fake_dvc(root, *args, timeout=None):
        if args[:2] == ("queue", "status"):
            return f"Task  Name  Created  Status\n\nWorker status: {alive[0]} active, 0 idle\n"
        return shown_running()

    def tick(now):
        if now > 1000 + 10 * compare_queue.ORPHAN_S:
            alive[0] = 0  # the workers go away only after a long wait: a live worker is never given up on

    clock = fake_clock(monkeypatch, fake_dvc, tick)
    logged = []
    c = cmp.Comparison(
        tmp_path, "c", ["t"], ["zerogen"], [0], {}, 1, tmp_path / "r", "distill compare", log=logged.append
    )
    known = c.watch({"base": "HEAD", "timing": {}}, poll_s=5)
    assert known["c-t-zerogen-s0"]["state"] == "failed" and known["c-t-zerogen-s0"]["orphaned"]
    # ORPHAN_S after the last worker left
    assert 1000 + 11 * compare_queue.ORPHAN_S <= clock[0] <= 1000 + 12 * compare_queue.ORPHAN_S
    assert any("no queue worker alive" in line for line in logged)
    row = cmp.run_row(c.combos[0], known["c-t-zerogen-s0"], {})
    assert row["state"] == "failed" and "no queue worker alive" in row["error"]
    log = tmp_path / "run.out"  # a log that says why it stopped wins over the generic reason
    log.write_text(
        "error: data/tasks/t/test.jsonl:1: not valid JSON\nERROR: failed to reproduce 'all': exited with 1\n"
    )
    row = cmp.run_row(c.combos[0], {**known["c-t-zerogen-s0"], "log": str(log)}, {})
    assert row["error"] == "all: data/tasks/t/test.jsonl:1: not valid JSON"


def test_a_worker_that_starts_late_is_not_taken_for_a_lost_one(monkeypatch, tmp_path):
    """What failed the real-queue test now and then (#44): compare's first look came before the queue worker had
    started, and with a short ORPHAN_S the window closed before the next look (every 15 s), so a healthy run was
    reported failed. Now the window is seen by at least 3 looks, and a worker alive when it closes means nothing
    is lost."""
    monkeypatch.setattr(compare_queue, "ORPHAN_S", 5.0)

    def fake_dvc(root, *args, timeout=None):
        now = cmp.time.time()
        if args[:2] == ("queue", "status"):
            return queue_status("Running", int(now >= 1004.5))  # the worker is up 4.5 s after compare's first look
        return shown_running().replace('"running"', '"success"' if now >= 1030 else '"running"')

    clock = fake_clock(monkeypatch, fake_dvc)
    logged = []
    c = cmp.Comparison(
        tmp_path, "c", ["t"], ["zerogen"], [0], {}, 1, tmp_path / "r", "distill compare", log=logged.append
    )
    known = c.watch({"base": "HEAD", "timing": {}}, poll_s=1)
    assert known["c-t-zerogen-s0"]["state"] == "success" and clock[0] >= 1030, logged
    assert not any("no queue worker alive" in line or "queued again" in line for line in logged), logged


def test_a_run_lost_by_the_queue_is_marked_and_queued_again_once(monkeypatch, tmp_path):
    """DVC's queue once left a run "running" whose worker died before writing the run's info file: every
    `dvc exp show` then failed ("No such file or directory: .../<id>.run") and `watch` retried it forever (a CI run
    hung 90 min). With no worker alive for ORPHAN_S, `dvc queue kill` marks it failed (`exp show` works again) and
    it is queued again, once; lost twice, it is reported failed. A kill that does not cure `exp show` stops compare
    with one line instead of hanging."""
    state, calls = ["lost"], []

    def fake_dvc(root, *args, timeout=None):
        calls.append(args[:2])
        if args[:2] == ("queue", "status"):
            return queue_status({"lost": "Running", "queued": "Queued"}.get(state[0], "Failed"), 0)
        if args[:2] == ("queue", "kill"):
            state[0] = "failed"
        elif args[:3] == ("exp", "run", "--queue"):
            state[0] = "queued"
        elif args[:2] == ("queue", "start"):
            state[0] = outcomes.pop(0)  # what the worker makes of it
        elif args[:2] == ("exp", "show"):
            if state[0] == "lost":
                raise DistillError(
                    "dvc exp show --json ...: ERROR: unexpected error - [Errno 2] No such file or "
                    "directory: '.dvc/tmp/exps/run/d8b7ba1/d8b7ba1.run'"
                )
            return shown_running().replace('"running"', json.dumps(state[0]))
        return ""

    clock = fake_clock(monkeypatch, fake_dvc)
    logged = []
    c = cmp.Comparison(
        tmp_path, "c", ["t"], ["zerogen"], [0], {}, 1, tmp_path / "r", "distill compare", log=logged.append
    )
    outcomes = ["success"]
    known = c.watch({"base": "HEAD", "timing": {}}, poll_s=5)
    assert known["c-t-zerogen-s0"]["state"] == "success"
    assert [a for a in calls if a[0] != "exp" or a[1] != "show"][-7:] == [
        ("queue", "status"),
        ("queue", "kill"),
        ("queue", "remove"),
        ("exp", "remove"),
        ("exp", "run"),
        ("queue", "status"),
        ("queue", "start"),
    ]
    assert 1000 + compare_queue.ORPHAN_S <= clock[0] <= 1000 + 2 * compare_queue.ORPHAN_S
    assert sum("No such file" in line for line in logged) == 2  # once by show, once by watch; not at every poll
    assert any("1 run(s) DVC's queue lost" in line for line in logged)

    # lost again after its one retry: marked, reported failed, not queued a third time
    state[0], outcomes, clock[0] = "lost", ["lost"], 1000.0
    calls.clear()
    known = c.watch({"base": "HEAD", "timing": {}}, poll_s=5)
    assert known["c-t-zerogen-s0"]["state"] == "failed" and ("exp", "run") not in calls and ("queue", "kill") in calls
    assert "no queue worker alive" in cmp.run_row(c.combos[0], known["c-t-zerogen-s0"], {})["error"]

    # the same at the start of a resumed comparison: marked first, then shown and queued again
    state[0] = "lost"
    calls.clear()
    assert c.queue({"base": "HEAD", "timing": {}}) == 1
    assert calls.index(("queue", "kill")) < calls.index(("exp", "show")) < calls.index(("exp", "run"))

    # a kill that does not cure `exp show`: one clear error, no endless polling
    monkeypatch.setattr(cmp.Comparison, "orphans", lambda self: set())
    state[0], clock[0] = "lost", 1000.0
    with pytest.raises(DistillError, match="no queue worker alive for 120 s and `dvc exp show` still fails"):
        c.watch({"base": "HEAD", "timing": {}}, poll_s=5)


def test_runs_left_queued_with_no_worker_get_workers_again(monkeypatch, tmp_path):
    """DVC's workers sometimes exit with tasks still queued (treeverse/dvc#10562; `dvc queue start` again is the
    workaround): after ORPHAN_S with no worker, compare starts them again, at most once per run; still
    queued after that, the run is reported failed rather than waited for."""
    state, starts = ["queued"], []

    def fake_dvc(root, *args, timeout=None):
        if args[:2] == ("queue", "status"):
            return queue_status(state[0].capitalize(), 0)
        if args[:2] == ("queue", "start"):
            starts.append(args)
            state[0] = outcome[0]
            return ""
        return shown_running().replace('"running"', json.dumps(state[0]))

    clock = fake_clock(monkeypatch, fake_dvc)
    logged = []
    c = cmp.Comparison(
        tmp_path, "c", ["t"], ["zerogen"], [0], {}, 2, tmp_path / "r", "distill compare", log=logged.append
    )
    outcome = ["success"]
    assert c.watch({"base": "HEAD", "timing": {}}, poll_s=5)["c-t-zerogen-s0"]["state"] == "success"
    assert starts == [("queue", "start", "-j", "2")] and any("workers started again" in line for line in logged)
    state[0], outcome[0], clock[0] = "queued", "queued", 1000.0  # a restart that does not help: reported, once tried
    c = cmp.Comparison(
        tmp_path, "c", ["t"], ["zerogen"], [0], {}, 2, tmp_path / "r", "distill compare", log=logged.append
    )
    known = c.watch({"base": "HEAD", "timing": {}}, poll_s=5)
    assert known["c-t-zerogen-s0"]["state"] == "failed" and known["c-t-zerogen-s0"]["orphaned"] and len(starts) == 2


def test_orphan_seconds_from_the_environment():
    assert compare_queue.orphan_seconds("5") == 5.0 and compare_queue.orphan_seconds("120") == compare_queue.ORPHAN_S
    for bad in ("soon", "0", "-3", "nan", ""):
        with pytest.raises(DistillError, match="DISTILL_ORPHAN_S: '.*' is not a positive number of seconds"):
            compare_queue.orphan_seconds(bad)

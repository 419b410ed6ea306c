"""`distill compare`: every (task, method, seed) as a named DVC experiment in DVC's own queue, watched until done,
then one table and one plot (reports/compare.md, .png) and the raw runs (reports/compare.json).

Nothing here schedules or runs a pipeline: `dvc exp run --queue` queues, `dvc queue start -j N` runs, and
`dvc exp show --json` says what state each experiment is in and what it measured. Queued experiments run in
temporary copies of the repository; they reach the LLM cache and the MLflow store of the real root (see
io.project_root), so nothing is asked of the teacher twice and every run lands in one registry.

Run it again with the same --name to resume: finished experiments are kept, failed ones are queued again,
queued and running ones are watched; a run DVC lists as running with no queue worker alive is queued again.
Ctrl-C stops watching, not the queue.

Calling `dvc` and reading `dvc queue status` (and DISTILL_ORPHAN_S, how long a queue with no worker is waited on) are
compare_queue.py's; which runs, and their names and params, compare_plan.py's; the table and the plot, report.py's.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from distill import compare_queue, report
from distill.compare_plan import Combo, check_params, setfit_unfit
from distill.compare_plan import parse_list, parse_overrides, parse_seeds, plan  # noqa: F401 - re-exported
from distill.core.io import DistillError, atomic_path
from distill.report import experiments, failure_reason, run_row  # noqa: F401

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,47}$")
SHOW_CMD = (
    "dvc exp show --md --drop '.*' --keep "
    "'Experiment|^task$|^method$|^seed$|student_accuracy|student_macro_f1|teacher_accuracy|n_samples'"
)


def check_tasks(root: Path, tasks: Sequence[str]) -> None:
    """Each task folder exists and git (or DVC) has all of it: a queued experiment runs from a copy of the
    commit plus changes to tracked files, so an untracked file would silently be missing there."""
    for task in tasks:
        folder = root / "data" / "tasks" / task
        if not folder.is_dir() and not folder.with_suffix(".dvc").is_file():
            raise DistillError(f"--tasks: data/tasks/{task} not found (add one with `distill add-task`)")
        out = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=all", "--", str(folder)],
            cwd=root,
            capture_output=True,
            text=True,
        ).stdout
        untracked = [line[3:] for line in out.splitlines() if line.startswith("??")]
        if untracked:
            raise DistillError(
                f"data/tasks/{task}: {len(untracked)} file(s) git does not track ({untracked[0]}, ...); queued "
                f"experiments would not see them: git add data/tasks/{task} && git commit"
            )


def champions(root: Path, params: dict[str, Any], combos: Sequence[Combo]) -> dict[str, str]:
    """Per task: which registered version holds @champion now, and whether it came from this comparison. Every
    MLflow run an experiment of this comparison logged (iteration runs too) gets the `comparison` tag."""
    from mlflow import MlflowClient

    from distill.tracking import store_lock, tracking_uri

    client = MlflowClient(tracking_uri(root))
    reg = params.get("register") or {}
    exp = client.get_experiment_by_name(reg.get("experiment", "distill"))
    names = {c.name for c in combos}
    if exp is not None:
        with store_lock(root):
            for name in names:
                for run in client.search_runs([exp.experiment_id], f"tags.dvc_exp = '{name}'"):
                    if run.data.tags.get("comparison") != combos[0].comparison:
                        client.set_tag(run.info.run_id, "comparison", combos[0].comparison)
    out = {}
    for task in dict.fromkeys(c.task for c in combos):
        model = reg.get("model_name", "distill-{task}").format(task=task)
        try:
            v = client.get_model_version_by_alias(model, "champion")
            tags = client.get_run(v.run_id).data.tags
        except Exception as e:  # noqa: BLE001 - no model registered yet (every run failed)
            out[task] = f"models:/{model}@champion: none ({str(e).splitlines()[0][:120]})"
            continue
        metric = reg.get("metric", "val_student_accuracy")
        source = "this comparison" if tags.get("dvc_exp") in names else "an earlier run"
        out[task] = (
            f"models:/{model}@champion = version {v.version} from `{tags.get('dvc_exp')}` ({source}; "
            f"{metric} {float(v.tags.get(metric, 'nan')):.4f})"
        )
    return out


@dataclass
class Comparison:
    root: Path
    name: str
    tasks: list[str]
    methods: list[str]
    seeds: list[int]
    overrides: dict[str, Any]
    jobs: int
    out: Path
    command: str
    log: Callable[[str], None] = print
    no_setfit: Sequence[str] = ()  # tasks the SetFit reference cannot train (text pairs, seq2seq)
    said: set[str] = field(default_factory=set)  # errors already logged: one retried at every poll is said once
    requeued: set[str] = field(default_factory=set)  # runs DVC's queue lost that `watch` queued again (once each)
    restarts: int = 0  # times `watch` started queue workers again for runs left queued with none alive

    def say_once(self, line: str) -> None:
        if line not in self.said:
            self.said.add(line)
            self.log(line)

    @property
    def combos(self) -> list[Combo]:
        return plan(self.name, self.tasks, self.methods, self.seeds, self.no_setfit)

    @property
    def manifest_path(self) -> Path:
        return self.out / "compare.json"

    def load_manifest(self) -> dict[str, Any]:
        if self.manifest_path.is_file():
            old = json.loads(self.manifest_path.read_text())
            if old.get("name") == self.name:
                return old
        base = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=self.root, capture_output=True, text=True
        ).stdout.strip()
        if not base:
            raise DistillError("compare: this folder has no git commit yet (run `make setup`, then commit)")
        return {"name": self.name, "base": base, "timing": {}}

    def save(self, manifest: dict[str, Any]) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.manifest_path) as tmp:
            tmp.write_text(json.dumps(manifest, indent=1))

    def show(self, manifest: dict[str, Any], tries: int = 3) -> dict[str, dict[str, Any]]:
        """Every experiment's state and results. `dvc exp show` has been seen to hang (a lock wait, once, as a queue
        worker finished): each call is bounded and retried."""
        for attempt in range(tries):
            try:
                out = compare_queue.dvc(
                    self.root, "exp", "show", "--json", "--rev", manifest["base"], "-n", "1", timeout=180
                )
                return experiments(json.loads(out or "[]"))
            except DistillError as e:
                if attempt == tries - 1:
                    raise
                if "does not exist" not in str(e):  # that one is a queued run's temporary copy coming or going: no news
                    self.say_once(f"compare: {e}; asking again")
                else:
                    time.sleep(2)
        raise AssertionError("unreachable")

    def orphans(self) -> set[str]:
        """Runs `dvc queue status` lists as running while no queue worker is alive (a crash, a reboot, a race in
        DVC's queue): nothing will ever finish them, and `dvc exp show` fails outright on one whose worker died
        before writing its info file. `dvc queue kill` marks such a task failed (it has no process to stop), so it
        can be queued again like any failed run. One it cannot mark is left to `watch` (and said)."""
        alive, listed = compare_queue.queue_seen(self.root)
        running = [c.name for c in self.combos if listed.get(c.name) == "running"]
        if alive or not running:
            return set()
        marked = set()
        for name in running:
            try:
                compare_queue.dvc(self.root, "queue", "kill", name, timeout=60)
                marked.add(name)
            except DistillError as e:
                self.log(f"compare: {name} is listed as running with no queue worker alive and was not reset ({e})")
        return marked

    def enqueue(self, c: Combo, manifest: dict[str, Any], again: bool) -> None:
        """`dvc exp run --queue` one combination; one queued before (it failed, or DVC's queue lost it) is removed from
        DVC's lists first."""
        if again:
            for what in ("queue", "exp"):  # it is in one of the two lists, or both; the other one says no
                try:
                    compare_queue.dvc(self.root, what, "remove", c.name, timeout=120)
                except DistillError:
                    pass
            manifest["timing"].pop(c.name, None)
        # values go back as JSON (a subset of YAML, which `-S` parses): None stays null, lists stay lists. A key the
        # run sets itself (the SetFit reference's recipe) is not also passed from -S
        own = c.params()
        kvs = [f"{k}={json.dumps(v)}" for k, v in self.overrides.items() if k not in own]
        kvs += [f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in own.items()]
        # bounded like every dvc call here (seconds normally; a lock held forever would otherwise hang compare)
        compare_queue.dvc(
            self.root, "exp", "run", "--queue", "-n", c.name, *[a for kv in kvs for a in ("-S", kv)], timeout=600
        )

    def queue(self, manifest: dict[str, Any]) -> int:
        """Queue every combination not already finished, queued or running; failed ones, and running ones no
        worker is left to finish, are queued again."""
        orphans = self.orphans()  # first: `dvc exp show` can fail on an orphan until it is marked
        known, queued = self.show(manifest), 0
        for c in self.combos:
            state = "failed" if c.name in orphans else known.get(c.name, {}).get("state")
            if state in ("success", "queued", "running"):
                continue
            self.enqueue(c, manifest, again=state == "failed")
            queued += 1
        return queued

    def recover(self, manifest: dict[str, Any]) -> bool:
        """While watching, once no queue worker has been alive for compare_queue.ORPHAN_S: runs DVC's queue lost
        (`orphans`) are queued again, once each, and runs still queued get workers again (DVC's workers sometimes exit
        with tasks left in the queue: treeverse/dvc#10562), at most as many times as there are runs. Whether anything
        was done."""
        lost = self.orphans()
        again = [c for c in self.combos if c.name in lost and c.name not in self.requeued]
        for c in again:
            self.requeued.add(c.name)
            try:
                self.enqueue(c, manifest, again=True)
            except DistillError as e:
                self.log(f"compare: {c.name} was lost by DVC's queue and could not be queued again ({e})")
        if again:
            self.log(f"compare: {len(again)} run(s) DVC's queue lost (listed as running, no worker alive) queued again")
        alive, listed = compare_queue.queue_seen(self.root)  # again: the runs just queued are listed now
        waiting = [c.name for c in self.combos if listed.get(c.name) == "queued"]
        restart = bool(waiting) and not alive and self.restarts < len(self.combos)
        if restart:
            self.restarts += 1
            if not again:
                self.log(
                    f"compare: {len(waiting)} run(s) still queued with no queue worker alive; workers started again"
                )
            compare_queue.dvc(self.root, "queue", "start", "-j", str(self.jobs), timeout=120)
        return bool(lost) or restart

    def clock(self, known: dict[str, dict[str, Any]], manifest: dict[str, Any], now: float) -> dict[str, str]:
        """Each run's state now; a run's start and end times (first seen running, first seen done) kept in the
        manifest."""
        states = {}
        for c in self.combos:
            state = states[c.name] = known.get(c.name, {}).get("state", "missing")
            t = manifest["timing"].setdefault(c.name, {})
            if state == "running":
                t.setdefault("start", now)
            elif state in ("success", "failed") and "start" in t:
                t.setdefault("end", now)
        self.save(manifest)
        return states

    def watch(self, manifest: dict[str, Any], poll_s: float) -> dict[str, dict[str, Any]]:
        """Poll `dvc exp show` until no experiment of this comparison is queued or running; log progress."""
        last, idle_since, checked, error = None, None, 0.0, None
        orphan_s = compare_queue.ORPHAN_S  # read at each call: tests set it shorter
        while True:
            try:
                known, error = self.show(manifest), None
            except DistillError as e:  # e.g. git busy committing an experiment, or an orphan (below): look again
                self.say_once(f"compare: {e} (retrying)")
                known, error = None, str(e)
            now, pending = time.time(), []
            if known is not None:
                states = self.clock(known, manifest, now)
                durations = [t["end"] - t["start"] for t in manifest["timing"].values() if "end" in t]
                line = report.progress(states, durations, self.jobs)
                if line != last:
                    self.log(f"[{time.strftime('%H:%M:%S')}] {self.name}: {line}")
                    last = line
                pending = [n for n, s in states.items() if s in ("queued", "running")]
                if not pending:
                    for n in self.requeued:  # a lost run that failed with no log of its own says why it is failed
                        if known.get(n, {}).get("state") == "failed":
                            known[n]["orphaned"] = True
                    return known
            # `dvc queue status` costs a second or two: not at every poll, but at least 3 looks per ORPHAN_S window
            if now - checked >= min(15.0, orphan_s / 3):
                checked, idle_since = now, None if compare_queue.workers_alive(self.root) else (idle_since or now)
            if idle_since and now - idle_since >= orphan_s:
                # DVC's queue has left a run "running" (a race, seen in tests) or "queued" with every worker gone:
                # nothing will ever change its state unless compare steps in
                if self.recover(manifest):
                    idle_since = None
                    continue
                # one came (back) since the last look (a slow start): nothing is lost
                if compare_queue.workers_alive(self.root):
                    checked, idle_since = time.time(), None
                    continue
                if known is None:
                    raise DistillError(
                        f"compare: no queue worker alive for {orphan_s:.0f} s and `dvc exp show` "
                        f"still fails ({error}); see `dvc queue status`"
                    )
                self.log(
                    f"compare: no queue worker alive for {orphan_s:.0f} s; {len(pending)} run(s) DVC still lists "
                    "as queued or running are reported as failed (`dvc queue status`)"
                )
                for n in pending:
                    known[n] = {"metrics": {}, "log": None, **known.get(n, {}), "state": "failed", "orphaned": True}
                return known
            time.sleep(poll_s)

    def write_report(self, manifest: dict[str, Any], known: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
        lost = {"state": "failed", "metrics": {}, "log": None}  # neither queued, running nor finished: say so
        runs = [run_row(c, known.get(c.name, lost), manifest["timing"].get(c.name, {})) for c in self.combos]
        for r in runs:
            if r["name"] not in known:
                r["error"] = "not in `dvc exp show` (removed from the queue?)"
        ok = [known[r["name"]] for r in runs if r["state"] == "success"]
        try:
            champs = champions(self.root, ok[0]["params"], self.combos) if ok else {}
        except Exception as e:  # noqa: BLE001 - the table is still worth writing
            champs = {"(all)": f"registry not read: {str(e).splitlines()[0][:160]}"}
        manifest.update(
            {
                "command": self.command,
                "tasks": self.tasks,
                "methods": self.methods,
                "seeds": self.seeds,
                "overrides": self.overrides,
                "runs": runs,
                "champions": champs,
            }
        )
        self.save(manifest)
        with atomic_path(self.out / "compare.md") as tmp:
            tmp.write_text(report.markdown(self.name, self.command, runs, self.tasks, self.methods, champs, SHOW_CMD))
        if any(r["state"] == "success" for r in runs):
            with atomic_path(self.out / "compare.png") as tmp:
                report.plot(tmp, runs, self.tasks, self.methods)
        return runs


def run(comparison: Comparison, params_path: Path, poll_s: float, wait: bool) -> list[dict[str, Any]] | None:
    c = comparison
    if not (c.root / "dvc.yaml").is_file() or not (c.root / ".dvc").is_dir():
        raise DistillError(f"compare: {c.root} is not a distill project (no dvc.yaml / .dvc here)")
    if not NAME.match(c.name):
        raise DistillError(f"--name: '{c.name}' must be letters, digits, '-' or '_' (at most 48)")
    from distill.methods.registry import METHODS

    unknown = [m for m in c.methods if m not in METHODS and m != "setfit"]
    if unknown:
        raise DistillError(
            f"--methods: unknown method '{unknown[0]}' (known: {', '.join(METHODS)}, and the setfit reference)"
        )
    check_tasks(c.root, c.tasks)
    if "setfit" in c.methods and (unfit := setfit_unfit(c.root, c.tasks)):
        c.no_setfit = unfit
        c.log(
            f"compare: no setfit reference for {', '.join(unfit)} (SetFit embeds one text; `labelled` is the "
            "real-label reference there)"
        )
    check_params(params_path, c.overrides, c.combos)
    manifest = c.load_manifest()
    queued = c.queue(manifest)
    c.save(manifest)
    c.log(f"compare {c.name}: {len(c.combos)} runs ({queued} newly queued); follow with `dvc queue status`")
    # started again for a resumed comparison whose workers are gone (a reboot)
    if queued or not compare_queue.workers(c.root, timeout=60):
        compare_queue.dvc(c.root, "queue", "start", "-j", str(c.jobs), timeout=120)
    if not wait:
        c.log(f"not waiting: `distill compare --name {c.name} ...` again (same options) watches and writes the report")
        return None
    try:
        known = c.watch(manifest, poll_s)
    except KeyboardInterrupt:
        c.log("\nstopped watching; the queue goes on (`dvc queue status`, `dvc queue kill`). Resume: the same command")
        raise
    runs = c.write_report(manifest, known)
    c.log(f"wrote {c.out / 'compare.md'} and {c.out / 'compare.png'}")
    return runs

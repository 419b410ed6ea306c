"""`distill compare`: every (task, method, seed) as a named DVC experiment in DVC's own queue, watched until done,
then one table and one plot (reports/compare.md, .png) and the raw runs (reports/compare.json).

Nothing here schedules or runs a pipeline: `dvc exp run --queue` queues, `dvc queue start -j N` runs, and
`dvc exp show --json` says what state each experiment is in and what it measured. Queued experiments run in
temporary copies of the repository; they reach the LLM cache and the MLflow store of the real root (see
io.project_root), so nothing is asked of the teacher twice and every run lands in one registry.

Run it again with the same --name to resume: finished experiments are kept, failed ones are queued again,
queued and running ones are watched; a run DVC lists as running with no queue worker alive is queued again.
Ctrl-C stops watching, not the queue.
"""
from __future__ import annotations

import json
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from distill import report
from distill.compare_plan import (Combo, check_params, parse_list, parse_overrides, parse_seeds, plan,  # noqa: F401
                                  setfit_unfit)
from distill.io import DistillError, atomic_path

ORPHAN_S = 120.0  # seconds with no queue worker alive before runs DVC still calls running are given up
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,47}$")
SHOW_CMD = ("dvc exp show --md --drop '.*' --keep "
            "'Experiment|^task$|^method$|^seed$|student_accuracy|student_macro_f1|teacher_accuracy|n_samples'")


def check_tasks(root: Path, tasks: Sequence[str]) -> None:
    """Each task folder exists and git (or DVC) has all of it: a queued experiment runs from a copy of the
    commit plus changes to tracked files, so an untracked file would silently be missing there."""
    for task in tasks:
        folder = root / "data" / "tasks" / task
        if not folder.is_dir() and not folder.with_suffix(".dvc").is_file():
            raise DistillError(f"--tasks: data/tasks/{task} not found (add one with `distill add-task`)")
        out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all", "--", str(folder)], cwd=root,
                             capture_output=True, text=True).stdout
        untracked = [line[3:] for line in out.splitlines() if line.startswith("??")]
        if untracked:
            raise DistillError(f"data/tasks/{task}: {len(untracked)} file(s) git does not track ({untracked[0]}, ...); queued "
                               f"experiments would not see them: git add data/tasks/{task} && git commit")


def dvc(root: Path, *args: str, timeout: float | None = None) -> str:
    # Output goes to temporary files, not pipes: `dvc queue start` leaves workers running that inherit its output
    # handles, and reading a pipe would wait for them to finish.
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        try:
            code = subprocess.run(["dvc", *args], cwd=root, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                  timeout=timeout).returncode
        except subprocess.TimeoutExpired:  # the child is killed; the caller may ask again
            raise DistillError(f"dvc {' '.join(args[:2])} gave no answer in {timeout:.0f} s") from None
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if code != 0:
        lines = [line.strip() for line in (stderr + stdout).splitlines() if line.strip()]
        why = next((line for line in lines if line.startswith("ERROR:")), lines[0] if lines else f"exit {code}")
        raise DistillError(f"dvc {' '.join(args[:3])} ...: {why}")
    return stdout


def workers(root: Path, timeout: float | None = None) -> int:
    """Queue workers alive now (active + idle), from `dvc queue status`."""
    m = re.search(r"Worker status: (\d+) active, (\d+) idle", dvc(root, "queue", "status", timeout=timeout))
    return int(m.group(1)) + int(m.group(2)) if m else 0


def workers_alive(root: Path) -> bool:
    """Whether the queue still has a worker; an unanswered or unreadable `dvc queue status` counts as yes."""
    try:
        return workers(root, timeout=60) > 0
    except DistillError:
        return True


def experiments(shown: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """`dvc exp show --json` -> {name: {state, params, metrics {file: data}, log}} for every named experiment."""
    rank = {"running": 3, "queued": 3, "success": 2, "failed": 1}
    out: dict[str, dict[str, Any]] = {}
    for baseline in shown:
        for exp in baseline.get("experiments") or []:
            revs = exp.get("revs") or [{}]
            name, rev = exp.get("name") or revs[0].get("name"), revs[0]
            executor = exp.get("executor") or {}
            data = rev.get("data") or {}
            state = executor.get("state") or ("failed" if rev.get("error") else "success")
            entry = {"state": state, "params": ((data.get("params") or {}).get("params.yaml") or {}).get("data") or {},
                     "metrics": {f: v["data"] for f, v in (data.get("metrics") or {}).items() if isinstance(v, dict) and "data" in v},
                     "log": (executor.get("local") or {}).get("log")}
            if name and rank.get(state, 0) >= rank.get(out.get(name, {}).get("state"), 0):
                out[name] = entry
    return out


def failure_reason(log: str, unsaid: str | None = None) -> str:
    """The one line that says why: the failing stage and distill's own `error:` line (else DVC's last ERROR; else
    `unsaid`, or the log's last line)."""
    lines = [line.strip() for line in log.splitlines()]
    ours = next((line for line in lines if line.startswith("error:")), None)
    theirs = [line for line in lines if line.startswith("ERROR:")]
    stage = re.search(r"failed to reproduce '([^']+)'", "\n".join(theirs))
    if ours:
        return f"{stage.group(1)}: {ours[len('error:'):].strip()}" if stage else ours
    if theirs:
        return theirs[-1][len("ERROR:"):].strip()
    tail = [line for line in lines if line]
    return unsaid or (tail[-1] if tail else "no log")


def run_row(combo: Combo, exp: dict[str, Any], timing: dict[str, float]) -> dict[str, Any]:
    """One finished run as the report reads it."""
    row: dict[str, Any] = {"name": combo.name, "task": combo.task, "method": combo.method, "seed": combo.seed,
                           "state": exp["state"]}
    if "start" in timing and "end" in timing:
        row["wall_min"] = (timing["end"] - timing["start"]) / 60
    metrics = exp["metrics"]
    final = metrics.get("metrics/metrics.json", {})
    for key in ("student_accuracy", "student_macro_f1", "val_student_accuracy", "teacher_accuracy", "llm.calls"):
        row[key] = final.get(key)
    row["n_samples"] = metrics.get("metrics/data.json", {}).get("n_samples")
    # what the training data cost the teacher: every data stage's metrics, not the evaluation's teacher baseline
    data = [m for f, m in metrics.items() if f != "metrics/metrics.json"]
    row["llm_tokens"] = sum(m.get("llm.data_prompt_tokens", 0) + m.get("llm.data_completion_tokens", 0) for m in data)
    row["teacher_data_s"] = sum(m.get("llm.data_seconds", 0.0) for m in data)  # scoring has no token counts locally
    if exp["state"] == "failed":
        log = Path(exp["log"]) if exp.get("log") else None
        # given up by `watch`: its log's own error line if it has one, else why it was given up
        orphaned = "DVC still listed it as queued or running, with no queue worker alive" if exp.get("orphaned") else None
        row["error"] = failure_reason(log.read_text(errors="replace"), orphaned) if log and log.is_file() else orphaned
    return row


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
        out[task] = (f"models:/{model}@champion = version {v.version} from `{tags.get('dvc_exp')}` ({source}; "
                     f"{metric} {float(v.tags.get(metric, 'nan')):.4f})")
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
        base = subprocess.run(["git", "rev-parse", "HEAD"], cwd=self.root, capture_output=True, text=True).stdout.strip()
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
                out = dvc(self.root, "exp", "show", "--json", "--rev", manifest["base"], "-n", "1", timeout=180)
                return experiments(json.loads(out or "[]"))
            except DistillError as e:
                if attempt == tries - 1:
                    raise
                if "does not exist" not in str(e):  # that one is a queued run's temporary copy coming or going: no news
                    self.log(f"compare: {e}; asking again")
                else:
                    time.sleep(2)
        raise AssertionError("unreachable")

    def orphans(self, known: dict[str, dict[str, Any]]) -> set[str]:
        """Runs DVC lists as running while no queue worker is alive (a crash, a reboot, the race `watch` gives up
        on): nothing will ever finish them. `dvc queue kill` marks such a task failed (it has no process to stop),
        so it can be queued again like any failed run. One it cannot mark is left to `watch`."""
        running = [c.name for c in self.combos if known.get(c.name, {}).get("state") == "running"]
        if not running or workers_alive(self.root):
            return set()
        marked = set()
        for name in running:
            try:
                dvc(self.root, "queue", "kill", name, timeout=60)
                marked.add(name)
            except DistillError as e:
                self.log(f"compare: {name} is listed as running with no queue worker alive and was not reset ({e})")
        return marked

    def queue(self, manifest: dict[str, Any]) -> int:
        """Queue every combination not already finished, queued or running; failed ones, and running ones no
        worker is left to finish, are queued again."""
        known, queued = self.show(manifest), 0
        orphans = self.orphans(known)
        for c in self.combos:
            state = "failed" if c.name in orphans else known.get(c.name, {}).get("state")
            if state in ("success", "queued", "running"):
                continue
            if state == "failed":
                for what in ("queue", "exp"):  # it is in one of the two lists, or both; the other one says no
                    try:
                        dvc(self.root, what, "remove", c.name, timeout=120)
                    except DistillError:
                        pass
                manifest["timing"].pop(c.name, None)
            # values go back as JSON (a subset of YAML, which `-S` parses): None stays null, lists stay lists. A key the
            # run sets itself (the SetFit reference's recipe) is not also passed from -S
            own = c.params()
            kvs = [f"{k}={json.dumps(v)}" for k, v in self.overrides.items() if k not in own]
            kvs += [f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in own.items()]
            sets = [a for kv in kvs for a in ("-S", kv)]
            dvc(self.root, "exp", "run", "--queue", "-n", c.name, *sets)
            queued += 1
        return queued

    def watch(self, manifest: dict[str, Any], poll_s: float) -> dict[str, dict[str, Any]]:
        """Poll `dvc exp show` until no experiment of this comparison is queued or running; log progress."""
        last, idle_since, checked = None, None, 0.0
        while True:
            try:
                known = self.show(manifest)
            except DistillError as e:  # e.g. git busy committing an experiment: try again
                self.log(f"compare: {e} (retrying)")
                time.sleep(poll_s)
                continue
            now, states = time.time(), {}
            for c in self.combos:
                state = known.get(c.name, {}).get("state", "missing")
                states[c.name] = state
                t = manifest["timing"].setdefault(c.name, {})
                if state == "running":
                    t.setdefault("start", now)
                elif state in ("success", "failed") and "start" in t:
                    t.setdefault("end", now)
            self.save(manifest)
            durations = [t["end"] - t["start"] for t in manifest["timing"].values() if "end" in t]
            line = report.progress(states, durations, self.jobs)
            if line != last:
                self.log(f"[{time.strftime('%H:%M:%S')}] {self.name}: {line}")
                last = line
            pending = [n for n, s in states.items() if s in ("queued", "running")]
            if not pending:
                return known
            if now - checked >= 15:  # `dvc queue status` costs a second or two: not at every poll
                checked, idle_since = now, None if workers_alive(self.root) else (idle_since or now)
            if idle_since and now - idle_since >= ORPHAN_S:
                # DVC's queue has left a finished run "running" with every worker gone (a race, seen once in
                # tests): nothing will ever change its state, so stop waiting and report it, never hang
                self.log(f"compare: no queue worker alive for {ORPHAN_S:.0f} s; {len(pending)} run(s) DVC still lists "
                         "as queued or running are reported as failed (`dvc queue status`)")
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
        manifest.update({"command": self.command, "tasks": self.tasks, "methods": self.methods, "seeds": self.seeds,
                         "overrides": self.overrides, "runs": runs, "champions": champs})
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
        raise DistillError(f"--methods: unknown method '{unknown[0]}' (known: {', '.join(METHODS)}, and the setfit reference)")
    check_tasks(c.root, c.tasks)
    if "setfit" in c.methods and (unfit := setfit_unfit(c.root, c.tasks)):
        c.no_setfit = unfit
        c.log(f"compare: no setfit reference for {', '.join(unfit)} (SetFit embeds one text; `labelled` is the "
              "real-label reference there)")
    check_params(params_path, c.overrides, c.combos)
    manifest = c.load_manifest()
    queued = c.queue(manifest)
    c.save(manifest)
    c.log(f"compare {c.name}: {len(c.combos)} runs ({queued} newly queued); follow with `dvc queue status`")
    if queued or not workers(c.root):  # a resumed comparison whose workers are gone (a reboot) starts them again
        dvc(c.root, "queue", "start", "-j", str(c.jobs))
    if not wait:
        c.log(f"not waiting: `distill compare --name {c.name} ...` again (same options) watches and writes the report")
        return None
    try:
        known = c.watch(manifest, poll_s)
    except KeyboardInterrupt:
        c.log(f"\nstopped watching; the queue goes on (`dvc queue status`, `dvc queue kill`). Resume: the same command")
        raise
    runs = c.write_report(manifest, known)
    c.log(f"wrote {c.out / 'compare.md'} and {c.out / 'compare.png'}")
    return runs

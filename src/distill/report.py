"""The tables and plot of `distill compare`: pure functions from `dvc exp show --json` to one row per run, and from
finished runs to reports/compare.md and .png.

One row per run in, one line per (task, method) out: mean ± std over seeds of the student's test accuracy and
macro-F1, its validation accuracy (what to choose on), the teacher's few-shot accuracy, generated samples, the
LLM tokens the training data cost, and wall time. Failed runs are listed with their error, never averaged.
"""

from __future__ import annotations

import re
import statistics
from pathlib import Path
from typing import Any, Sequence

from distill.compare_plan import Combo

# (column title, run field, digits); the fields are what run_row reads out of `dvc exp show --json`
COLUMNS = [
    ("student acc (test)", "student_accuracy", 3),
    ("student macro-F1", "student_macro_f1", 3),
    ("student acc (val)", "val_student_accuracy", 3),
    ("teacher acc (test)", "teacher_accuracy", 3),
    ("samples", "n_samples", 0),
    ("LLM tokens", "llm_tokens", 0),
    ("teacher s (data)", "teacher_data_s", 0),
    ("wall min/run", "wall_min", 1),
]


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
            entry = {
                "state": state,
                "params": ((data.get("params") or {}).get("params.yaml") or {}).get("data") or {},
                "metrics": {
                    f: v["data"] for f, v in (data.get("metrics") or {}).items() if isinstance(v, dict) and "data" in v
                },
                "log": (executor.get("local") or {}).get("log"),
            }
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
        return f"{stage.group(1)}: {ours[len('error:') :].strip()}" if stage else ours
    if theirs:
        return theirs[-1][len("ERROR:") :].strip()
    tail = [line for line in lines if line]
    return unsaid or (tail[-1] if tail else "no log")


def run_row(combo: Combo, exp: dict[str, Any], timing: dict[str, float]) -> dict[str, Any]:
    """One finished run as the report reads it."""
    row: dict[str, Any] = {
        "name": combo.name,
        "task": combo.task,
        "method": combo.method,
        "seed": combo.seed,
        "state": exp["state"],
    }
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
        orphaned = (
            "DVC still listed it as queued or running, with no queue worker alive" if exp.get("orphaned") else None
        )
        row["error"] = failure_reason(log.read_text(errors="replace"), orphaned) if log and log.is_file() else orphaned
    return row


def mean_std(values: Sequence[float | None], digits: int = 3) -> str:
    """'0.812 ± 0.004' over seeds; one value alone; '–' when there is none."""
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return "–"
    if len(vals) == 1:
        return f"{vals[0]:.{digits}f}"
    return f"{statistics.mean(vals):.{digits}f} ± {statistics.stdev(vals):.{digits}f}"


def group(runs: Sequence[dict[str, Any]], tasks: Sequence[str], methods: Sequence[str]) -> list[dict[str, Any]]:
    """One entry per (task, method) in the order asked, with its successful runs and its failed ones."""
    out = []
    for task in tasks:
        for method in methods:
            mine = [r for r in runs if r["task"] == task and r["method"] == method]
            out.append(
                {
                    "task": task,
                    "method": method,
                    "ok": [r for r in mine if r["state"] == "success"],
                    "failed": [r for r in mine if r["state"] == "failed"],
                    "total": len(mine),
                }
            )
    return out


def markdown(
    name: str,
    command: str,
    runs: Sequence[dict[str, Any]],
    tasks: Sequence[str],
    methods: Sequence[str],
    champions: dict[str, str],
    show_cmd: str,
) -> str:
    lines = [
        f"# Comparison `{name}`",
        "",
        f"Made by: `{command}`",
        "",
        "Mean ± std over seeds (one value: one seed). Choose on validation accuracy; test accuracy is for "
        "reporting. LLM tokens and teacher seconds: what producing the training data cost the teacher (counted "
        "when first computed, also when served from the cache; the embedded teacher reports no tokens for "
        "scoring, so LLKD's pseudo-labels show as seconds only); wall time as `distill compare` saw it.",
        "",
    ]
    if "setfit" in methods:
        lines += [
            "`setfit` is the reference, what a user would do instead of distilling: SetFit on the task's "
            "fewshot.jsonl alone (its real labels, no teacher), the same student backbone.",
            "",
        ]
    lines.append("| task | method | runs | " + " | ".join(c[0] for c in COLUMNS) + " |")
    lines.append("|" + "---|" * (3 + len(COLUMNS)))
    for g in group(runs, tasks, methods):
        cells = [mean_std([r.get(field) for r in g["ok"]], digits) for _, field, digits in COLUMNS]
        lines.append(f"| {g['task']} | {g['method']} | {len(g['ok'])}/{g['total']} | " + " | ".join(cells) + " |")
    failed = [r for r in runs if r["state"] == "failed"]
    if failed:
        lines += ["", "## Failed runs", ""]
        lines += [
            f"- `{r['name']}` ({r['task']}, {r['method']}, seed {r['seed']}): {r.get('error') or 'no error line found'}"
            for r in failed
        ]
    if champions:
        lines += ["", "## Registry", ""]
        lines += [f"- {task}: {text}" for task, text in champions.items()]
    lines += ["", "The same numbers per experiment, from DVC:", "", f"    {show_cmd}", ""]
    return "\n".join(lines)


def plot(path: str | Path, runs: Sequence[dict[str, Any]], tasks: Sequence[str], methods: Sequence[str]) -> None:
    """Grouped bars: one group per task, one bar per method (mean test accuracy, error bar = std over seeds),
    and the teacher's few-shot accuracy as a black line over each group."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    width = 0.8 / max(len(methods), 1)
    fig, ax = plt.subplots(figsize=(max(4.0, 1.6 * len(tasks) * max(1, len(methods)) / 2), 3.6))
    groups = group(runs, tasks, methods)
    for j, method in enumerate(methods):
        means, stds = [], []
        for task in tasks:
            acc = [
                r["student_accuracy"] for g in groups if g["task"] == task and g["method"] == method for r in g["ok"]
            ]
            means.append(statistics.mean(acc) if acc else 0.0)
            stds.append(statistics.stdev(acc) if len(acc) > 1 else 0.0)
        xs = [i - 0.4 + width * (j + 0.5) for i in range(len(tasks))]
        ax.bar(xs, means, width, yerr=stds, capsize=3, label=method)
    for i, task in enumerate(tasks):
        teacher = [
            r["teacher_accuracy"]
            for g in groups
            if g["task"] == task
            for r in g["ok"]
            if r.get("teacher_accuracy") is not None
        ]
        if teacher:
            ax.hlines(
                statistics.mean(teacher),
                i - 0.42,
                i + 0.42,
                colors="black",
                linewidth=1.5,
                label="teacher (few-shot)" if i == 0 else None,
            )
    ax.set_xticks(range(len(tasks)), tasks)
    ax.set_ylabel("student test accuracy")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8, ncols=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120, format="png")
    plt.close(fig)


def progress(states: dict[str, str], durations: Sequence[float], jobs: int) -> str:
    """'3/8 done (1 failed), 2 running, 3 queued, ETA ~14 min' from each run's state and the finished runs' times."""
    count = lambda s: sum(v == s for v in states.values())  # noqa: E731
    done, failed, running, queued = count("success"), count("failed"), count("running"), count("queued")
    text = f"{done + failed}/{len(states)} done ({failed} failed), {running} running, {queued} queued"
    if running + queued == 0:
        return text
    if not durations:
        return text + ", ETA after the first run ends"
    eta = (queued + 0.5 * running) * statistics.mean(durations) / max(jobs, 1)
    return text + f", ETA ~{max(1, round(eta / 60))} min"

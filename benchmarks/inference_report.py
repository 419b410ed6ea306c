"""The inference benchmark's `inference` block of docs/benchmarks.md and its plot (docs/inference.svg), from the rows
benchmarks/inference.py appends to benchmarks/results/inference.jsonl: the latest row per (task, model), a table with
each model's rows/s over the teacher's (and an ONNX export's over its PyTorch fp32 student's), and accuracy against
rows/s. A row without provenance (provenance.py) is refused.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from inference_measure import LLM, MODELS  # noqa: E402
from provenance import checked  # noqa: E402


def latest(rows: list[dict]) -> list[dict]:
    """The last row of each (task, model), tasks in first-measured order, models in MODELS order."""
    last = {(r["task"], r["model"]): r for r in rows}
    return [last[(t, m)] for t in dict.fromkeys(r["task"] for r in rows) for m in MODELS if (t, m) in last]


def ratio(r: dict, rows: list[dict], of: str) -> str:
    """r's rows/s over the rows/s of model `of` on the same task ('–' without it, or for it)."""
    ref = next((x for x in rows if x["task"] == r["task"] and x["model"] == of), None)
    if ref is None or ref is r:
        return "–"
    x = r["rows_per_s"] / ref["rows_per_s"]
    return f"{x:,.0f}×" if x >= 100 else f"{x:.1f}×" if x >= 1 else f"{x:.2f}×"


def render(rows: list[dict], plot: str | None = None) -> str:
    """The `inference` block; a row without provenance (provenance.py) is refused."""
    rows = latest(checked(rows, "inference results"))
    if not rows:
        raise SystemExit("no inference rows: measure them first (without --render-only)")
    first, llm = rows[0], next((r for r in rows if r["model"] in LLM), None)
    load = max(r["load_avg_1m"] for r in rows)
    lines = [
        f"Measured {', '.join(sorted({r['date'] for r in rows}))} on {first['machine']} ({first['cpu_model']}; "
        f"1-min load average {load:.1f} at most), {first['threads']} threads per model, each in its own process. "
        "Students: accuracy and rows/s on the test split (the rows in brackets)"
        + (
            f"; the LLM rows on a fixed sample of {llm['accuracy_rows']} test rows, an empty LLM cache in every "
            "timed phase, at the teacher's own score batch size (params.teacher), and their batch-1 latency is one "
            "`classify` call of one row"
            if llm
            else ""
        )
        + ". × teacher: rows/s over the teacher's; × PyTorch: an ONNX export's over its PyTorch fp32 student's. "
        "Latency: p50 / p95 of single-row calls on distinct rows. Reproduce: "
        "`.venv/bin/python benchmarks/inference.py --tasks sst2 ag_news --train minilm mpnet`.",
        "",
    ]
    lines += [f"![accuracy against rows/s at batch 64]({plot})", ""] if plot else []
    lines += [
        "| task | model | runtime | accuracy (rows) | accuracy on the LLM's sample | rows/s, batch 64 | "
        "× teacher | × PyTorch fp32 | latency p50 / p95 (ms), batch 1 | peak RSS (MB) | on disk (MB) | "
        "commit |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        m, n = r["model"], r["accuracy_rows"]
        rps = f"{r['rows_per_s']:,.0f}" if r["rows_per_s"] >= 100 else f"{r['rows_per_s']:.1f}"
        rps += f" (batch {r['batch']})" if r["batch"] != 64 else ""
        onnx = ratio(r, rows, m.split("-")[0]) if m.endswith(("-onnx", "-int8")) else "–"
        size = f"{r['size_bytes'] / 2**20:,.0f}" + (f" ({r['size_note']})" if r.get("size_note") else "")
        lines.append(
            f"| {r['task']} | {MODELS[m]} | {r['runtime']} | {r['accuracy']:.4f} "
            f"({f'{n}-row sample' if m in LLM else n}) | {r.get('accuracy_llm_sample', r['accuracy']):.4f} | "
            f"{rps} | {ratio(r, rows, 'teacher')} | {onnx} | "
            f"{r['latency_p50_ms']:.1f} / {r['latency_p95_ms']:.1f} | {r['peak_rss_mb']:,.0f} | {size} | "
            f"{r['commit'][:7]}{'+dirty' if r['dirty'] else ''} |"
        )
    if setfit := [r for r in rows if r.get("train_s")]:
        lines += ["", "SetFit's training here: " + ", ".join(f"{r['task']} {r['train_s']:.0f} s" for r in setfit) + "."]
    return "\n".join(lines)


def draw(rows: list[dict], path: Path) -> None:
    """Accuracy against rows/s at batch 64 (log x), a point per (task, model), a marker and colour per task."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["svg.hashsalt"] = "distill-inference"  # stable ids: the SVG changes only when the numbers do
    rows = latest(checked(rows, "inference results"))
    fig, ax = plt.subplots(figsize=(9, 5.5))
    styles = [("o", "tab:blue"), ("s", "tab:orange"), ("^", "tab:green"), ("D", "tab:red"), ("v", "tab:purple")]
    for (marker, colour), task in zip(styles * 4, dict.fromkeys(r["task"] for r in rows)):
        pts = [r for r in rows if r["task"] == task]
        ax.scatter(
            [r["rows_per_s"] for r in pts], [r["accuracy"] for r in pts], marker=marker, color=colour, label=task
        )
        for r in pts:
            ax.annotate(
                r["model"] + (" (sample)" if r["model"] in LLM else ""),
                (r["rows_per_s"], r["accuracy"]),
                textcoords="offset points",
                xytext=(5, 3),
                fontsize=7,
                color=colour,
            )
    ax.set(
        xscale="log",
        xlabel=f"rows/s at batch 64, {rows[0]['threads']} CPU threads (the LLM: its score batch size)",
        ylabel="test accuracy (the LLM's: on its sample)",
        title="Accuracy against throughput, per model and task",
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.margins(x=0.15)  # room for the labels of the outermost points
    ax.legend(title="task")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, **({"metadata": {"Date": None}} if path.suffix == ".svg" else {}))
    plt.close(fig)

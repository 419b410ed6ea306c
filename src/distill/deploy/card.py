"""The student's model card: markdown written from the run's own params, metrics and provenance, never by hand.

The register stage puts it on the registered model version (and the model, for @champion) as its description,
as README.md at the logged model's root, and in models/card.md. `model_card` is a pure function of dicts, so what
a card says is tested without MLflow.
"""

from __future__ import annotations

from typing import Any

NONE = "–"


def _num(value: Any) -> str:
    return NONE if isinstance(value, bool) or not isinstance(value, (int, float)) else f"{value:.4f}"


def _count(metrics: dict[str, Any], key: str) -> str | None:
    value = metrics.get(key)
    return str(int(value)) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def results_table(metrics: dict[str, Any]) -> list[str]:
    """Student, teacher and labeller (the teacher's labels as the student learned them) on test and validation."""
    lines = ["| | test accuracy | test macro-F1 | validation accuracy | validation macro-F1 |", "|---|---|---|---|---|"]
    for who in ("student", "teacher", "labeller"):
        keys = [f"{who}_accuracy", f"{who}_macro_f1", f"val_{who}_accuracy", f"val_{who}_macro_f1"]
        if any(k in metrics for k in keys):
            lines.append(f"| {who} | " + " | ".join(_num(metrics.get(k)) for k in keys) + " |")
    return lines


def _sample_note(metrics: dict[str, Any]) -> list[str]:
    """Where the teacher was scored on a sample: the student's accuracy on those same rows, so the two compare."""
    notes = []
    n_test, t_test = _count(metrics, "n_test"), _count(metrics, "teacher_n_test")
    if n_test:
        line = f"Test: the student on all {n_test} rows of the task's test split"
        if t_test and t_test != n_test:
            line += (
                f"; the teacher (and labeller) on a sample of {t_test} of them, where the student scores "
                f"{_num(metrics.get('student_accuracy_teacher_rows'))}"
            )
        notes.append(line + ".")
    val_n, t_val = _count(metrics, "val_n"), _count(metrics, "val_teacher_n")
    if val_n and val_n != "0":
        line = f"Validation: {val_n} rows"
        if t_val and t_val != val_n:
            line += (
                f" (the teacher on {t_val}; the student there: "
                f"{_num(metrics.get('val_student_accuracy_teacher_rows'))})"
            )
        notes.append(line + "; @champion is decided on validation, so report test.")
    elif val_n == "0":
        notes.append("No validation metrics: this run trained on all of validation.jsonl (it never takes @champion).")
    return notes


def data_lines(metrics: dict[str, Any], labels: list[str]) -> list[str]:
    """Rows generated, kept and assembled, from the stage metrics the register stage read (missing ones left out)."""
    lines = []
    requested, kept = _count(metrics, "generate.requested"), _count(metrics, "generate.kept")
    if requested and kept:
        lines.append(f"- Generated: {requested} rows requested from the teacher, {kept} kept by its checks")
    assembled = _count(metrics, "data.n_samples")
    if assembled:
        per_label = [f"{l} {_count(metrics, f'data.kept.{l}')}" for l in labels if _count(metrics, f"data.kept.{l}")]
        real = _count(metrics, "data.n_fewshot")
        line = f"- Training set: {assembled} rows" + (f" ({', '.join(per_label)})" if per_label else "")
        lines.append(line + (f", {real} of them real few-shot rows" if real else ""))
    dropped = [
        f"{n} {what}"
        for key, what in (
            ("data.dropped_test_overlap", "as copies of test rows"),
            ("data.dropped_high_energy", "as high-energy (GOLD)"),
        )
        if (n := _count(metrics, key)) and n != "0"
    ]
    if dropped:
        lines.append("- Dropped: " + ", ".join(dropped))
    if n_train := _count(metrics, "train.n_train"):
        epochs = _count(metrics, "train.epochs_run")
        lines.append(f"- Trained on {n_train} rows" + (f" for {epochs} epoch(s)" if epochs else ""))
    return lines


def model_card(
    meta: dict[str, Any],
    params: dict[str, Any],
    metrics: dict[str, Any],
    provenance: dict[str, Any],
    spec: dict[str, Any] | None = None,
) -> str:
    """The card. meta: the student folder's distill.json (task, fields, labels); params: the validated params.yaml
    as a dict; metrics: what the register stage logged (evaluate's, data.*, train.*); provenance: model_name,
    version, alias, run_id, git_commit, params_sha256, dvc_exp, data_sha256 (any may be missing); spec: the
    resolved task.yaml as a dict, for field descriptions and the instruction."""
    spec = spec or {}
    teacher, train = params.get("teacher", {}), params.get("train", {})
    task = meta.get("task") or params.get("task", "?")
    labels = [str(l) for l in meta.get("labels") or []]
    fields = list(meta.get("fields") or [])
    described = {f.get("name"): f.get("description") for f in spec.get("fields", [])}
    generator = meta.get("kind") == "generator"
    name = provenance.get("model_name", f"distill-{task}")

    out = [f"# {name}: the distilled student for `{task}`", ""]
    what = "writes the answer (a worked equation, then the answer)" if generator else "classifies text"
    out.append(
        f"A small model that {what}, trained by distill on data from an LLM teacher "
        f"(method `{params.get('method', '?')}`). Every number below comes from this run's metrics."
    )
    out += ["", "## Task", "", f"- Task: `{task}`" + (f" ({spec['kind']})" if spec.get("kind") else "")]
    if spec.get("instruction"):
        out.append(f"- Instruction: {spec['instruction']}")
    out.append("- Input: " + ", ".join(f"`{f}`" + (f" ({described[f]})" if described.get(f) else "") for f in fields))
    if labels:
        out.append("- Labels: " + ", ".join(f"`{l}`" for l in labels))
        out.append("- Output per row: `label`, its probability `score`, and `p_<label>` for every label")

    out += [
        "",
        "## How it was made",
        "",
        f"- Teacher: `{teacher.get('model', '?')}` (backend `{teacher.get('backend', '?')}`)",
        f"- Method: `{params.get('method', '?')}`, seed {params.get('seed', '?')}",
        f"- Student: `{train.get('lm_model' if generator else 'model', '?')}`"
        + (
            ""
            if generator
            else f", recipe `{train.get('recipe', '?')}`, inputs cut at {meta.get('max_length', '?')} tokens"
        ),
    ]
    out += data_lines(metrics, labels)

    out += ["", "## Results", ""] + results_table(metrics) + [""] + _sample_note(metrics)
    if generator:
        out.append("Accuracy is the task's answer check on the student's greedy answers.")
    if "val_teacher_gain" in metrics:  # evaluate's teacher check: the labeller against the fewshot labels alone
        from distill.kinds.base import teacher_check

        out.append(f"Teacher check (validation){teacher_check(metrics).removeprefix(';')}.")

    out += [
        "",
        "## Intended use and limits",
        "",
        "- Meant for inputs like the task's own data"
        + (f" ({'; '.join(d for d in described.values() if d)})" if any(described.values()) else "")
        + (f", answered with one of its {len(labels)} labels." if labels else "."),
        "- Evaluated only on the task's test split (and validation, which chose it): other domains, languages, "
        "text lengths and deliberately adversarial inputs were not evaluated.",
        "- Its training labels came from the teacher, so it inherits the teacher's errors and biases; "
        "compare it with the teacher's row above before relying on it.",
    ]
    if labels:
        out.append("- `score` is the student's softmax probability: a ranking signal, not a calibrated confidence.")
    if not generator:
        out.append(f"- Text beyond {meta.get('max_length', '?')} tokens is cut off before the student reads it.")

    pv = provenance
    out += ["", "## Provenance", ""]
    if pv.get("version"):
        alias = f", @{pv['alias']} when registered" if pv.get("alias") else ""
        out.append(f"- Registered model: `{name}` version {pv['version']}{alias}")
    for key, label in (
        ("run_id", "MLflow run"),
        ("dvc_exp", "DVC experiment"),
        ("git_commit", "Git commit"),
        ("params_sha256", "params sha256"),
        ("data_sha256", "training data sha256"),
    ):
        if pv.get(key):
            out.append(f"- {label}: `{pv[key]}`")
    out.append("- Every param is on the MLflow run; `dvc exp show` lists the experiment.")
    return "\n".join(out) + "\n"

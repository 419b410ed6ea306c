"""Every MLflow call in one place: the run, its params/metrics/tags, the logged student, registry aliases.

The store is SQLite (`mlflow.db` at the repo root, absolute URI; MLflow 3.17 refuses the plain file
store) with artifacts in `mlartifacts/`. Telemetry is off. Nothing secret is ever logged: params are the
validated params.yaml, which holds at most the *name* of an environment variable.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def tracking_uri(root: Path | None = None) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{((root or Path.cwd()) / 'mlflow.db').resolve()}"


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def setup(experiment: str, root: Path | None = None):
    import mlflow

    root = (root or Path.cwd()).resolve()
    mlflow.set_tracking_uri(tracking_uri(root))
    exp = mlflow.get_experiment_by_name(experiment)
    if exp is None:
        mlflow.create_experiment(experiment, artifact_location=(root / "mlartifacts").as_uri())
    mlflow.set_experiment(experiment)
    return mlflow


def dvc_tags() -> dict[str, str]:
    """DVC tells a stage which experiment it belongs to through the environment."""
    return {"dvc_exp": os.environ.get("DVC_EXP_NAME", "workspace")}


def pip_requirements() -> list[str]:
    """Explicit requirements: inference takes 0.3 s to log instead of 5.5 s, and torch stays the CPU build."""
    import tokenizers
    import torch
    import transformers

    return [f"torch=={torch.__version__.split('+')[0]}", f"transformers=={transformers.__version__}", f"tokenizers=={tokenizers.__version__}"]


def _log_basics(mlflow, params: dict[str, Any], metrics: dict[str, Any], tags: dict[str, str]) -> None:
    mlflow.set_tags({**tags, **dvc_tags()})
    mlflow.log_params({k: ("null" if v is None else v) for k, v in flatten(params).items()})
    mlflow.log_metrics({k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))})


def log_iteration_run(experiment: str, run_name: str, params: dict[str, Any], metrics: dict[str, Any],
                      tags: dict[str, str], texts: dict[str, str]) -> str:
    """One run per iteration stage (no model): params, the iteration's metrics, small text artifacts."""
    mlflow = setup(experiment)
    with mlflow.start_run(run_name=run_name) as run:
        _log_basics(mlflow, params, metrics, tags)
        for name, text in texts.items():
            mlflow.log_text(text, name)
    return run.info.run_id


def log_student_run(
    experiment: str, run_name: str, params: dict[str, Any], metrics: dict[str, float], tags: dict[str, str],
    model_dir: str, model_name: str, decide_metric: str, curve: list[dict[str, Any]] | None = None,
    epochs: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Log one pipeline run with its student, register it, and move @champion if it beats the current one."""
    mlflow = setup(experiment)
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from distill.students.classifier import load_student

    model, tok = load_student(model_dir)
    with mlflow.start_run(run_name=run_name) as run:
        _log_basics(mlflow, params, metrics, tags)
        for prefix, points in (("iter", curve or []), ("epoch", epochs or [])):  # per-iteration and per-epoch curves
            for step, point in enumerate(points, start=1):
                mlflow.log_metrics({f"{prefix}.{k}": float(v) for k, v in point.items() if isinstance(v, (int, float))}, step=step)
        info = mlflow.transformers.log_model(
            transformers_model={"model": model, "tokenizer": tok}, name="student", task="text-classification",
            pip_requirements=pip_requirements(), registered_model_name=model_name,
        )
    client = MlflowClient()
    version = str(info.registered_model_version)
    new = float(metrics[decide_metric])
    client.set_model_version_tag(model_name, version, decide_metric, str(new))
    try:
        champ = client.get_model_version_by_alias(model_name, "champion")
        champ_score = float(champ.tags.get(decide_metric, "-inf"))
    except MlflowException:
        champ, champ_score = None, float("-inf")
    alias = "champion" if new > champ_score else "challenger"
    client.set_registered_model_alias(model_name, alias, version)
    return {"run_id": run.info.run_id, "model_name": model_name, "version": version, "alias": alias,
            decide_metric: new, "previous_champion": str(champ.version) if champ else None, "tracking_uri": tracking_uri()}

"""Every MLflow call in one place: the run, its params/metrics/tags, the logged student, registry aliases.

The store is SQLite (`mlflow.db` at the repository's real root, also from a queued experiment's temporary
copy; MLflow 3.17 refuses the plain file store) with artifacts in `mlartifacts/`, unless MLFLOW_TRACKING_URI
names another (an `mlflow server`). Experiments running at once (`dvc queue start -j 2`) take turns through a
file lock, so SQLite never answers "database is locked". Telemetry is off. Nothing secret is ever logged:
params are the validated params.yaml, which holds at most the *name* of an environment variable.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from distill.core.io import file_lock, project_root

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def tracking_uri(root: Path | None = None) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{((root or project_root()) / 'mlflow.db').resolve()}"


def store_lock(root: Path | None = None):
    """Held around every write to the tracking store (one writer at a time across processes)."""
    return file_lock((root or project_root()) / ".cache" / "mlflow.lock")


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

    root = (root or project_root()).resolve()
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
    import pandas
    import safetensors
    import tokenizers
    import torch
    import transformers

    return [
        f"torch=={torch.__version__.split('+')[0]}",
        f"transformers=={transformers.__version__}",
        f"tokenizers=={tokenizers.__version__}",
        f"safetensors=={safetensors.__version__}",
        f"pandas=={pandas.__version__}",
    ]


def _log_basics(mlflow, params: dict[str, Any], metrics: dict[str, Any], tags: dict[str, str]) -> None:
    mlflow.set_tags({**tags, **dvc_tags()})
    mlflow.log_params({k: ("null" if v is None else v) for k, v in flatten(params).items()})
    mlflow.log_metrics({k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))})


def locked(fn):
    """Run `fn` holding the store lock."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with store_lock():
            return fn(*args, **kwargs)

    return wrapper


def _log_generator(mlflow, model_dir, meta: dict, model_name: str):
    """A seq2seq student with the transformers flavor, as a text-generation pipeline: the logged prompt template turns
    a bare problem into what the student was trained to read, and greedy decoding is its inference config, so
    `mlflow.pyfunc.load_model("models:/distill-svamp@champion").predict(["<problem>"])` gives the written equation
    and answer. (Logging the folder as a checkpoint path fails under transformers 5 in MLflow 3.17: a pipeline it is.)"""
    import transformers

    display = meta["spec"]["fields"][0]["display"]
    pipe = transformers.pipeline(
        "text-generation",
        model=transformers.AutoModelForCausalLM.from_pretrained(model_dir),
        tokenizer=transformers.AutoTokenizer.from_pretrained(model_dir),
    )
    return mlflow.transformers.log_model(
        transformers_model=pipe,
        name="student",
        prompt_template=f"{display}: {{prompt}}\n",
        model_config={"max_new_tokens": meta["max_new_tokens"], "do_sample": False},
        pip_requirements=pip_requirements(),
        registered_model_name=model_name,
    )


@locked
def log_iteration_run(
    experiment: str,
    run_name: str,
    params: dict[str, Any],
    metrics: dict[str, Any],
    tags: dict[str, str],
    texts: dict[str, str],
) -> str:
    """One run per iteration stage (no model): params, the iteration's metrics, small text artifacts."""
    mlflow = setup(experiment)
    with mlflow.start_run(run_name=run_name) as run:
        _log_basics(mlflow, params, metrics, tags)
        for name, text in texts.items():
            mlflow.log_text(text, name)
    return run.info.run_id


@locked
def log_student_run(
    experiment: str,
    run_name: str,
    params: dict[str, Any],
    metrics: dict[str, float],
    tags: dict[str, str],
    model_dir: str,
    model_name: str,
    decide_metric: str,
    curve: list[dict[str, Any]] | None = None,
    epochs: list[dict[str, Any]] | None = None,
    examples: list[dict[str, Any]] | None = None,
    card: Callable[[dict[str, Any]], str] | None = None,
) -> dict[str, Any]:
    """Log one pipeline run with its student, register it, and move @champion if it beats the current one.

    `examples`: rows whose text fields become the model's input example; `card(result)`: the model card, written
    with the registration's result (run id, version, alias) and returned as result["card"]."""
    mlflow = setup(experiment)
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    import distill
    from distill.students.model import read_meta
    from distill.students.serving import StudentModel, input_example, signature

    with mlflow.start_run(run_name=run_name) as run:
        _log_basics(mlflow, params, metrics, tags)
        for prefix, points in (("iter", curve or []), ("epoch", epochs or [])):  # per-iteration and per-epoch curves
            for step, point in enumerate(points, start=1):
                mlflow.log_metrics(
                    {f"{prefix}.{k}": float(v) for k, v in point.items() if isinstance(v, (int, float))}, step=step
                )
        meta = read_meta(model_dir)
        info = (
            _log_generator(mlflow, model_dir, meta, model_name)
            if meta.get("kind") == "generator"
            else mlflow.pyfunc.log_model(
                # the student folder + this package's code: loads without distill installed
                name="student",
                python_model=StudentModel(),
                artifacts={"student": str(model_dir)},
                code_paths=[str(Path(distill.__file__).parent)],
                pip_requirements=pip_requirements(),
                registered_model_name=model_name,
                signature=signature(meta["fields"], meta["labels"]),
                # MLflow checks the example through its serving path when logging: a model that can't answer it warns here
                input_example=input_example(meta["fields"], examples or []),
            )
        )
    client = MlflowClient()
    version = str(info.registered_model_version)
    # A run without the deciding metric (`labelled` trained on validation.jsonl: nothing left to judge it on) is
    # registered but never competes for @champion.
    new = float(metrics[decide_metric]) if decide_metric in metrics else None
    client.set_model_version_tag(model_name, version, decide_metric, str(new) if new is not None else "none")
    try:
        champ = client.get_model_version_by_alias(model_name, "champion")
        champ_score = float(champ.tags.get(decide_metric, "-inf"))
    except MlflowException:
        champ, champ_score = None, float("-inf")
    alias = "champion" if new is not None and new > champ_score else "challenger"
    client.set_registered_model_alias(model_name, alias, version)
    result = {
        "run_id": run.info.run_id,
        "model_name": model_name,
        "version": version,
        "alias": alias,
        decide_metric: new,
        "previous_champion": str(champ.version) if champ else None,
        "tracking_uri": tracking_uri(),
    }
    if card is not None:
        result["card"] = text = card(result)
        _attach_card(client, info.model_id, model_name, version, alias, text)
    return result


def _attach_card(client, model_id: str, model_name: str, version: str, alias: str, text: str) -> None:
    """The card as README.md at the logged model's root (`models:/<name>/<version>/README.md`, next to MLmodel), as
    the version's description, and as the registered model's when this version is @champion (the card of what
    `models:/<name>@champion` serves) or the model has none yet."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        readme = Path(tmp) / "README.md"
        readme.write_text(text, encoding="utf-8")
        client.log_model_artifact(model_id, str(readme))
    client.update_model_version(model_name, version, description=text)
    if alias == "champion" or not client.get_registered_model(model_name).description:
        client.update_registered_model(model_name, description=text)

"""Where `distill predict` and `distill export` get a student: a student folder, or a model in the project's MLflow
store (`models:/<name>@<alias>`, `models:/<name>/<version>`, `runs:/<run_id>/student`), of which only the logged
model's "student" artifact (the student folder) is downloaded. Every failure is one DistillError line."""

from __future__ import annotations

import os
from pathlib import Path

from distill.core.io import DistillError

MODEL_FORMS = "a student folder, models:/<name>@<alias>, models:/<name>/<version> or runs:/<run_id>/student"


def fetch_student(model: str, tmp: Path, command: str) -> Path:
    """MODEL -> a local student folder (from MLflow: downloaded under `tmp`). `command` names who refuses a
    seq2seq student in the message."""
    if not model.startswith(("models:/", "runs:/")):
        path = Path(model)
        if not path.is_dir():
            raise DistillError(f"{model}: no such student folder (MODEL is {MODEL_FORMS})")
        return path
    uri, store = full_uri(model), store_of(model)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # a bar per file, for a few small files
    import yaml
    from mlflow.artifacts import download_artifacts
    from mlflow.exceptions import MlflowException

    try:
        mlmodel = yaml.safe_load(
            Path(download_artifacts(f"{uri}/MLmodel", dst_path=str(tmp / "meta"), tracking_uri=store)).read_text()
        )
        artifacts = mlmodel.get("flavors", {}).get("python_function", {}).get("artifacts") or {}
        if "student" not in artifacts:  # a seq2seq student is logged as a transformers pipeline
            raise DistillError(
                f"{model}: not a classification student (no 'student' artifact; a seq2seq task's "
                f"generator, logged as a transformers pipeline?): {command} works with classification "
                "students only"
            )
        return Path(
            download_artifacts(
                f"{uri}/{artifacts['student']['path']}", dst_path=str(tmp / "student"), tracking_uri=store
            )
        )
    except MlflowException as e:
        raise DistillError(f"{model}: {str(e.message).splitlines()[0]} (MLflow store: {store})") from None


def store_of(model: str) -> str:
    """The project's tracking URI; a missing SQLite store is an error (MLflow would make an empty one, then say
    "not found")."""
    from distill.tracking import tracking_uri

    store = tracking_uri()
    if store.startswith("sqlite:///") and not Path(store.removeprefix("sqlite:///")).is_file():
        raise DistillError(
            f"{model}: no MLflow store at {store} (run the pipeline here first, or set MLFLOW_TRACKING_URI)"
        )
    return store


def full_uri(model: str) -> str:
    uri = model.rstrip("/")
    body = uri.split(":/", 1)[1]
    if uri.startswith("models:/") and "@" not in body and "/" not in body and not body.startswith("m-"):
        raise DistillError(f"{model}: name a version or an alias, e.g. models:/{body}@champion or models:/{body}/1")
    return uri + "/student" if uri.startswith("runs:/") and "/" not in body else uri  # where log_student_run logs it


def run_id_of(model: str) -> str:
    """The MLflow run that logged MODEL (runs:/<id>/..., models:/<name>@<alias>, models:/<name>/<version>)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    body = full_uri(model).split(":/", 1)[1]
    if model.startswith("runs:/"):
        return body.split("/", 1)[0]
    client = MlflowClient(store_of(model))
    try:
        if "@" in body:
            return client.get_model_version_by_alias(*body.split("@", 1)).run_id
        if "/" not in body:  # models:/m-<id>, a logged model
            return client.get_logged_model(body).source_run_id
        name, version = body.split("/", 1)
        return client.get_model_version(name, version).run_id
    except MlflowException as e:
        raise DistillError(f"{model}: {str(e.message).splitlines()[0]}") from None


def load_classifier(folder: Path, label: str, command: str, device: str = "cpu"):
    """A classification student from its folder; a generator or a folder that is no student is one line."""
    from distill.students.model import HEAD, META, load_student, read_meta

    meta = read_meta(folder)
    if meta.get("kind") == "generator":
        raise DistillError(
            f"{label}: a seq2seq task's student (a generator): {command} works with classification students only"
        )
    if not meta or not (folder / HEAD).is_file():
        raise DistillError(f"{label}: not a distill student folder (no {META} / {HEAD}; MODEL is {MODEL_FORMS})")
    return load_student(folder, device)

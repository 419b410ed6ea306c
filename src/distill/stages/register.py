"""Stage `register`: log the run to MLflow, register the student, move @champion / @challenger, and write its model
card (distill/deploy/card.py) onto the registered version, into the logged model (README.md) and to models/card.md."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

from distill.config import Params
from distill.core.io import atomic_path, read_json, sha256_file, sha256_text, write_json


def run(
    params: Params,
    data_path: str,
    model_dir: str,
    metrics_paths: list[str],
    out: str,
    curve_path: str | None = None,
    history_path: str | None = None,
    card_out: str = "models/card.md",
    task_yaml: str = "data/work/task.yaml",
    written: Params | None = None,
) -> None:
    """written: params.yaml as the user wrote it (`method: auto` included); the run logs the resolved config
    (resolved.py) as its params, with written's values beside it under `yaml.` where they differ."""
    from distill.deploy.card import model_card
    from distill.kinds import kind_of_student
    from distill.resolved import mlflow_params, resolved_params
    from distill.students.model import read_meta
    from distill.tracking import dvc_tags, log_student_run

    metrics: dict[str, float] = {}
    for path in metrics_paths:  # e.g. metrics/generate.json -> generate.kept, ...
        stage = path.rsplit("/", 1)[-1].removesuffix(".json")
        prefix = "" if stage == "metrics" else f"{stage}."
        metrics.update({f"{prefix}{k}": v for k, v in read_json(path).items() if isinstance(v, (int, float))})
    name = params.register.model_name.format(task=params.task)
    meta = read_meta(model_dir)
    # what the student trained with: the method's settings and its task kind's (the kind the student was made for)
    resolved = resolved_params(params, kind_of_student(meta))
    dump = resolved.model_dump()
    # check_task's resolved spec (a dependency in dvc.yaml) gives the card the fields' descriptions; without it
    # (a stage called on its own) the card still has everything else
    spec = yaml.safe_load(Path(task_yaml).read_text(encoding="utf-8")) if Path(task_yaml).is_file() else None
    commit, data_sha = git_commit(), sha256_file(data_path)
    provenance = {
        "git_commit": commit,
        "params_sha256": sha256_text(json.dumps(dump, sort_keys=True, default=str)),
        "data_sha256": data_sha,
        **dvc_tags(),
    }
    result = log_student_run(
        experiment=params.register.experiment,
        run_name=f"{params.method}-{params.task}",
        params=mlflow_params(written or params, resolved),
        metrics=metrics,
        tags={
            "pipeline": "distill",
            "method": params.method,
            "task": params.task,
            "seed": str(params.seed),
            "generated_sha256": data_sha,
            **({"mlflow.source.git.commit": commit} if commit else {}),
            **({"comparison": params.comparison} if params.comparison else {}),
        },
        model_dir=model_dir,
        model_name=name,
        decide_metric=params.register.metric,
        curve=read_curve(curve_path),
        epochs=read_json(history_path) if history_path else None,
        examples=head_rows(data_path),
        card=lambda registered: model_card(meta, dump, metrics, {**provenance, **registered}, spec),
    )
    with atomic_path(card_out) as tmp:
        tmp.write_text(result.pop("card"), encoding="utf-8")
    write_json(out, {**result, "method": params.method})  # the method `auto` became, for `distill summary`
    print(
        f"register: {name} version {result['version']} -> @{result['alias']} (run {result['run_id']}); card in {card_out}"
    )


def git_commit() -> str | None:
    """The commit the run's code came from (a DVC experiment's copy is a clone at its baseline), None outside git."""
    try:
        r = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (r.stdout.strip() or None) if r.returncode == 0 else None


def head_rows(path: str, n: int = 20) -> list[dict]:
    """The first rows of the training data: the logged model's input example takes two of them (their text fields)."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                rows.append(json.loads(line))
            if len(rows) >= n:
                break
    return rows


def read_curve(path: str | None) -> list[dict]:
    """plots/iterations.tsv -> one dict per iteration (numbers only)."""
    if not path:
        return []
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    header, rows = lines[0].split("\t"), [l.split("\t") for l in lines[1:] if l.strip()]
    return [{k: float(v) for k, v in zip(header, r) if v not in ("", "None")} for r in rows]

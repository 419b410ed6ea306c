"""Stage `register`: log the run to MLflow, register the student, move @champion / @challenger."""
from __future__ import annotations

from pathlib import Path

from distill.config import Params
from distill.io import read_json, sha256_file, write_json


def run(params: Params, data_path: str, model_dir: str, metrics_paths: list[str], out: str, curve_path: str | None = None,
        history_path: str | None = None) -> None:
    from distill.tracking import log_student_run

    metrics: dict[str, float] = {}
    for path in metrics_paths:  # e.g. metrics/generate.json -> generate.kept, ...
        stage = path.rsplit("/", 1)[-1].removesuffix(".json")
        prefix = "" if stage == "metrics" else f"{stage}."
        metrics.update({f"{prefix}{k}": v for k, v in read_json(path).items() if isinstance(v, (int, float))})
    name = params.register.model_name.format(task=params.task)
    result = log_student_run(
        experiment=params.register.experiment, run_name=f"{params.method}-{params.task}", params=params.model_dump(),
        metrics=metrics, tags={"pipeline": "distill", "method": params.method, "task": params.task, "seed": str(params.seed),
                               "generated_sha256": sha256_file(data_path),
                               **({"comparison": params.comparison} if params.comparison else {})},
        model_dir=model_dir, model_name=name, decide_metric=params.register.metric, curve=read_curve(curve_path),
        epochs=read_json(history_path) if history_path else None,
    )
    write_json(out, {**result, "method": params.method})  # the method `auto` became, for `distill summary`
    print(f"register: {name} version {result['version']} -> @{result['alias']} (run {result['run_id']})")


def read_curve(path: str | None) -> list[dict]:
    """plots/iterations.tsv -> one dict per iteration (numbers only)."""
    if not path:
        return []
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    header, rows = lines[0].split("\t"), [l.split("\t") for l in lines[1:] if l.strip()]
    return [{k: float(v) for k, v in zip(header, r) if v not in ("", "None")} for r in rows]

"""The config a run really uses, computed in one place.

params.yaml is what a user wrote; a run trains with more than that: `method: auto` made concrete for the task, the
method's own training settings (GOLD's final epochs and learning rate, LLKD's random head) and the task kind's
student settings (a seq2seq student is a causal LM with its own batch size, learning rate and step floor). Every stage
that trains a student takes its settings from here, `register` logs `resolved_params` to MLflow as the run's params
(with the params.yaml values that differ beside them under `yaml.`), and `distill config --resolved` prints them.

What no config can hold is decided by the data: `train.min_steps` lifts the epochs when the training set is small;
the epochs really run are the train stage's metric `train.epochs_run`.
"""

from __future__ import annotations

from typing import Any

from distill.config import Params, TrainParams
from distill.kinds import TaskKind, kind_of


def train_config(params: Params, spec) -> TrainParams:
    """What the final student trains with: the method's overrides, then the task kind's (`spec`: the task spec, or
    its kind itself)."""
    from distill.methods.registry import method_of

    kind = spec if isinstance(spec, TaskKind) else kind_of(spec)
    return kind.student_config(method_of(params).train_config(params))


def resolved_params(params: Params, spec) -> Params:
    """params with `train` as the final student trains (the method must already be concrete: methods/auto.py)."""
    return params.model_copy(update={"train": train_config(params, spec)})


def flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def changed(written: Params, resolved: Params) -> dict[str, tuple[Any, Any]]:
    """Dotted key -> (params.yaml's value, the value the run used), for every key the run changed."""
    a, b = flat(written.model_dump(mode="json")), flat(resolved.model_dump(mode="json"))
    return {k: (a.get(k), b[k]) for k in b if a.get(k) != b[k]}


def mlflow_params(written: Params, resolved: Params) -> dict[str, Any]:
    """The run's MLflow params: the resolved values, and `yaml.<key>` = what params.yaml said where that differs."""
    out = flat(resolved.model_dump(mode="json"))
    out.update({f"yaml.{k}": old for k, (old, _) in changed(written, resolved).items()})
    return out

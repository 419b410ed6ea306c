"""Classification tasks (`kind: single | pair`): labels, an encoder + linear head student (finetune or SetFit),
accuracy and macro-F1 of the student, the teacher and the labeller on test and validation."""

from __future__ import annotations

from typing import Callable, Sequence

from distill.core.io import DistillError
from distill.kinds.base import TaskKind


class Classification(TaskKind):
    name = "classification"
    student_kind = "classifier"
    request_keys = ("id", "label")  # each request asks for a sample of its label
    samples = "samples"

    def student_config(self, train):
        return train

    def new_student(self, spec, cfg, seed: int):
        from distill.students.model import new_student, resolve_student

        return new_student(
            resolve_student(cfg.model),
            spec.label_names,
            spec.field_names,
            seed,
            cfg.pooling,
            max_length=cfg.max_length,
            task=spec.name,
        )

    def train(
        self,
        spec,
        rows: list[dict],
        cfg,
        seed: int,
        *,
        start=None,
        loss_fn=None,
        selector=None,
        select_rows: Sequence[dict] = (),
        epochs: int | None = None,
        lr: float | None = None,
        log: Callable[[str], None] = print,
    ):
        from distill.students import train_student

        return train_student(
            rows,
            spec.label_names,
            spec.field_names,
            cfg,
            seed,
            task=spec.name,
            start=start,
            loss_fn=loss_fn,
            selector=selector,
            select_rows=select_rows,
            epochs=epochs,
            lr=lr,
            log=log,
        )

    def fewshot_row(self, spec, row: dict, weight: float) -> dict:
        # one-hot teacher_probs: soft-target training and LLKD's selector treat it as a certain label
        probs = {name: float(name == row["label"]) for name in spec.label_names}
        return {
            "id": f"fewshot-{row['_line']}",
            **{f: row[f] for f in spec.field_names},
            "label": row["label"],
            "source": "fewshot",
            "round": 0,
            "weight": weight,
            "meta": {"teacher_probs": probs, "confidence": 1.0},
        }

    def requests(self, params, task, fewshot: list[dict], demos: int) -> tuple[list[dict], str]:
        """generate.n_per_label label-conditioned requests per label (pair tasks: each on a real first text)."""
        from distill.prompting.generation import build_requests

        spec = task.spec
        contexts = []
        if spec.kind == "pair":  # condition on real first texts (premises), as ZeroGen does for NLI
            contexts = [r[spec.fields[0].name] for r in task.load("unlabeled")]
            if not contexts:
                raise DistillError(f"{task.path('unlabeled')}: pair tasks need unlabeled rows to condition on")
        rows = build_requests(
            spec,
            params.generate.n_per_label,
            fewshot,
            contexts,
            demos,
            params.prompts.assistant_prefix,
            params.seed,
        )
        return rows, f"{params.generate.n_per_label} per label x {len(spec.labels)} labels"

    def label_check_fewshot(self, params, task) -> list[dict]:
        return task.load("fewshot") if params.generate.label_filter != "none" else []

    def classes(self, spec) -> int:
        return len(spec.labels)

    def class_id(self, spec, row: dict) -> int:
        return spec.label_id(row["label"])

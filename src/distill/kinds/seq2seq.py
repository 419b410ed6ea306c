"""Seq2seq tasks (`kind: seq2seq`, e.g. SVAMP word problems): a written target checked by the task's answer check
(numeric for SVAMP), a causal-LM student (students/generator.py), checked accuracy of the student's and the
teacher's greedy answers on test and validation."""

from __future__ import annotations

from typing import Callable, Sequence

from distill.core.io import DistillError
from distill.kinds.base import TaskKind


class Seq2Seq(TaskKind):
    name = "seq2seq"
    student_kind = "generator"
    generative = True
    request_keys = ("id",)  # a request asks for a whole worked example: there is no label
    samples = "examples"

    def student_config(self, train):
        """The causal LM trains with train.lm_* in place of the encoder's batch size, learning rate and step floor."""
        return train.model_copy(
            update={"batch_size": train.lm_batch_size, "lr": train.lm_lr, "min_steps": train.lm_min_steps}
        )

    def new_student(self, spec, cfg, seed: int):
        from distill.students.generator import new_generator, resolve_lm

        return new_generator(resolve_lm(cfg.lm_model), spec, seed, cfg.lm_max_length)

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
        """The same loop as the classifier's, on the token cross-entropy of the written answer (a classifier's loss
        such as GOLD's SCE does not apply; LLKD's selector reads each row's mean token NLL)."""
        from distill.students.finetune import finetune, sequence_loss

        if not rows:
            raise DistillError("no training data: every sample was filtered out (see the data stages' metrics)")
        if cfg.recipe != "finetune":
            raise DistillError(f"task {spec.name} is seq2seq: its causal-LM student trains with train.recipe: finetune")
        student = start or self.new_student(spec, cfg, seed)
        history = finetune(student, rows, cfg, seed, sequence_loss, selector, select_rows, log, epochs, lr, probe=False)
        return student, history

    def fewshot_row(self, spec, row: dict, weight: float) -> dict:
        # the worked example as it is (input, target and equation, if any)
        return {
            "id": f"fewshot-{row['_line']}",
            **{k: v for k, v in row.items() if not k.startswith("_")},
            "source": "fewshot",
            "round": 0,
            "weight": weight,
            "meta": {"confidence": 1.0},
        }

    def requests(self, params, task, fewshot: list[dict], demos: int) -> tuple[list[dict], str]:
        """Input + worked answer examples: generate.n_per_label requests in all (there are no labels)."""
        from distill.prompting import seq2seq

        rows = seq2seq.build_requests(task.spec, params.generate.n_per_label, fewshot, demos, params.seed, "zerogen")
        return rows, f"{demos} real examples in each"

    def label_check_fewshot(self, params, task) -> list[dict]:
        return []  # an example is checked by its own equation and answer, not by a label classifier

    def classes(self, spec) -> int:
        return 1  # a seq2seq task is one class: its rows have no label

    def class_id(self, spec, row: dict) -> int:
        return 0

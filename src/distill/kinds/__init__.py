"""Task kinds: one interface (kinds/base.py), two implementations, chosen once from the task spec.

A classification task (`kind: single | pair`) has labels: its student is an encoder with a linear head, its metrics
are accuracy and macro-F1 against the teacher's few-shot label distributions. A seq2seq task (`kind: seq2seq`) has a
written target checked by the task's answer check: its student is a causal LM, its metrics are checked accuracy
against the teacher's worked solutions. The shared stages call the kind and never ask which one it is.
"""

from __future__ import annotations

from distill.kinds.base import TaskKind
from distill.kinds.classification import Classification
from distill.kinds.seq2seq import Seq2Seq

CLASSIFICATION, SEQ2SEQ = Classification(), Seq2Seq()


def kind_of(spec) -> TaskKind:
    """The task's kind, from its spec (TaskSpec.kind)."""
    return SEQ2SEQ if spec.seq2seq else CLASSIFICATION


def kind_of_student(meta: dict) -> TaskKind:
    """The kind a trained student was made for, from its folder's distill.json (a causal LM writes: seq2seq)."""
    return SEQ2SEQ if meta.get("kind") == SEQ2SEQ.student_kind else CLASSIFICATION


__all__ = ["CLASSIFICATION", "SEQ2SEQ", "TaskKind", "kind_of", "kind_of_student"]

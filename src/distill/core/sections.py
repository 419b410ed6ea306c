"""The base of every params.yaml section: unknown keys refused, no `true` or `1e3` where a whole number belongs.

Below both config.py (the shared sections) and every method's own params model (methods/<name>/params.py).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

# A task is a folder directly under data/tasks/: no separators, no leading dot (so no `..`), no absolute path.
TASK_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"

RUNTIME = {"runtime": True}  # a knob of speed or patience, not of results: in no stage's dvc.yaml params


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, v, info):
        # pydantic's lax mode reads `epochs: true` as 1: a typo, not a number
        ann = cls.model_fields[info.field_name].annotation
        types = (ann, *getattr(ann, "__args__", ()))
        if isinstance(v, bool) and bool not in types:
            raise PydanticCustomError("bool_not_number", "a yes/no value where a number or text belongs")
        # ...and `n_per_label: 1e3` (DVC writes -S 1e3 as 1000.0) as 1000: a whole number must be written as one
        if isinstance(v, float) and int in types and float not in types:
            raise PydanticCustomError("float_not_int", "a decimal number where a whole number belongs")
        return v


class Step(Section):
    i: int = Field(gt=0, description="iteration / round number (1, 2, ...)")
    prev: int = Field(ge=0, description="the step whose output this one builds on (i - 1; 0 = the start)")


def check_chain(steps: list[Step], name: str) -> None:
    """DVC runs foreach items in no guaranteed order: each step names its predecessor, and they must chain."""
    for n, it in enumerate(steps, start=1):
        if (it.i, it.prev) != (n, n - 1):
            raise ValueError(
                f"{name}[{n - 1}] must be {{i: {n}, prev: {n - 1}}} (each step builds on the previous one)"
            )

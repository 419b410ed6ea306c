"""The `labelled` reference's params.yaml section `labelled:`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from distill.core.sections import Section


class LabelledParams(Section):
    splits: list[Literal["fewshot", "validation"]] = Field(
        default_factory=lambda: ["fewshot"],
        description="real labelled splits the student trains on (a reference: what ~16-200 human labels buy)",
    )

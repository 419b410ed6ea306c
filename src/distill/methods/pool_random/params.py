"""`pool_random`'s params.yaml section `pool_random:`."""

from __future__ import annotations

from pydantic import Field

from distill.core.sections import Section


class PoolRandomParams(Section):
    size: int = Field(
        500, gt=0, description="rows of unlabeled.jsonl drawn at random (seeded) for the teacher to label"
    )

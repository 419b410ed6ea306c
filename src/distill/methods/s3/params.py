"""S3's params.yaml section `s3:`."""

from __future__ import annotations

from pydantic import Field, model_validator

from distill.core.sections import Section, Step, check_chain


class S3Params(Section):
    rounds: list[Step] = Field(
        default_factory=lambda: [Step(i=k, prev=k - 1) for k in range(1, 3)],
        description="error-extrapolation rounds (the paper: 2); one DVC stage per item, round k reads round prev",
    )
    seed_per_label: int = Field(96, gt=0, description="seed samples requested per label")
    n_rationales: int = Field(
        8, ge=0, description="rationales listed per label (single-text tasks; 0 = plain ZeroGen seed)"
    )
    rationales_per_prompt: int = Field(2, ge=0, description="rationales sampled into each seed prompt")
    max_extrapolations: int | None = Field(
        64, gt=0, description="cap on new examples per round (one per validation error; None = all errors)"
    )
    check_extrapolations: bool = Field(
        False, description="also run the teacher label check on extrapolated examples (they carry the gold label)"
    )
    error_fraction: float = Field(
        0.5,
        gt=0,
        lt=1,
        description="share of validation.jsonl the rounds mine for errors (fixed "
        "by a hash of each row); the rest stays unseen and is what an S3 run's val_* metrics are "
        "measured on, so choosing on validation stays fair to the other methods",
    )

    @model_validator(mode="after")
    def _chain(self) -> "S3Params":
        check_chain(self.rounds, "rounds")
        return self

"""GOLD's params.yaml section `gold:`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from distill.core.sections import Section, Step, check_chain


class GoldParams(Section):
    iterations: list[Step] = Field(
        default_factory=lambda: [Step(i=k, prev=k - 1) for k in range(1, 5)],
        description="one DVC stage per item; iteration k reads iteration prev's feedback by path",
    )
    train_per_iter: int = Field(48, gt=0, description="training samples requested per iteration (spread over labels)")
    val_per_iter: int = Field(
        16,
        ge=0,
        description="'significantly different' validation samples per iteration; they are scored by energy and also become training data, as in the code",
    )
    real_demos: int = Field(
        3,
        ge=0,
        description="real same-label examples from fewshot.jsonl shown in every prompt (the code's 3 fixed examples)",
    )
    feedback: Literal["band", "top", "random", "none"] = Field(
        "band",
        description="band: energy band [ood_lo, ood_hi) (GOLD); top: highest energy; random; none: no feedback (GOLD's rounds, label filter and loss stay: not ZeroGen)",
    )
    n_feedback: int = Field(
        3, ge=0, description="feedback samples per label carried to the next iteration (shown as extra numbered demos)"
    )
    feedback_ratio: float = Field(
        0.5, ge=0, le=1, description="fraction of requests that show the feedback (the code: every 2nd batch)"
    )
    ood_lo: float = Field(0.5, ge=0, le=1, description="lower energy percentile of the feedback band")
    ood_hi: float = Field(0.8, ge=0, le=1, description="upper energy percentile of the feedback band")
    energy_T: float = Field(1.0, gt=0, description="energy temperature T in E(x) = -T logsumexp(logits / T)")
    include_pad: bool = Field(
        True,
        description="seq2seq tasks: token-level energy averages over the batch's padding after "
        "a row's answer too, as the released code does; false: over the written tokens only",
    )
    refresh: Literal["cumulative", "reinit"] = Field(
        "cumulative",
        description="cumulative: keep training the previous iteration's student (the code); reinit: a fresh student each iteration",
    )
    refresh_epochs: int = Field(
        8,
        gt=0,
        description="epochs over all data so far at each student refresh (a student that "
        "has barely trained scores every sample near -T*log(K): no OOD signal)",
    )
    loss: Literal["sce", "ce"] = Field(
        "sce", description="final student's loss: symmetric cross-entropy (GOLD) or plain CE"
    )
    final_epochs: int | None = Field(
        None, gt=0, description="final student's epochs (the code: 50); None = train.epochs"
    )
    final_lr: float | None = Field(
        None, gt=0, description="final student's learning rate (the code: 1e-5 for T5-base; None = train.lr)"
    )
    sce_alpha: float = Field(0.1, ge=0, description="SCE weight of CE (code examples: 0.01-0.1)")
    sce_beta: float = Field(1.0, ge=0, description="SCE weight of reverse CE")
    sce_clamp: float = Field(
        1e-4, gt=0, lt=1, description="clamp of the one-hot label inside reverse CE (log(1e-4) = -9.21)"
    )
    drop_top_energy: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="drop this fraction of highest-energy samples before final training (default off, as in the code)",
    )

    @model_validator(mode="after")
    def _chain(self) -> "GoldParams":
        check_chain(self.iterations, "iterations")
        if not self.ood_lo < self.ood_hi:
            raise ValueError("ood_lo must be below ood_hi")
        return self

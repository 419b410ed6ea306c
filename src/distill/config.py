"""Typed params.yaml: one pydantic model per section, unknown keys refused, help text on every field.

Read once by each stage (`load_params`) and passed down as typed objects. An error names the file and
the dotted field: `params.yaml: train.epochs: Input should be greater than 0 (got 0)`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import warnings

from pydantic import BaseModel, ConfigDict, Field

from distill.io import load_yaml_model


# `register` is a params section; pydantic warns that it shadows ABCMeta.register, which we never use.
warnings.filterwarnings("ignore", message='Field name "register"')


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TeacherParams(Section):
    backend: Literal["local"] = Field("local", description="local: the embedded model, in-process, on CPU")
    model: str = Field(
        "smollm2-135m-instruct",
        description="embedded model name (smollm2-135m-instruct), a .gguf file, or a local Hugging Face model folder",
    )
    batch_size: int = Field(32, gt=0, description="sequences per forward pass when generating")
    score_batch_size: int = Field(16, gt=0, description="rows per forward pass when scoring labels")
    shots_per_label: int = Field(4, ge=0, description="few-shot demonstrations per label (from fewshot.jsonl) in scoring prompts")
    calibration: Literal["batch", "none"] = Field(
        "batch", description="batch: divide label probabilities by their mean over the scored set (removes a "
        "small teacher's preference for one label word); none: raw label probabilities"
    )
    max_text_chars: int = Field(1500, gt=0, description="texts are cut to this many characters inside teacher prompts")


class PromptsParams(Section):
    demos_per_prompt: int = Field(
        0, ge=0, description="real same-label examples from fewshot.jsonl shown in each generation prompt (0 = pure ZeroGen)"
    )
    assistant_prefix: str = Field('"', description="text the answer is pre-filled with (ZeroGen ends prompts with an open quote)")


class GenerateParams(Section):
    n_per_label: int = Field(128, gt=0, description="samples requested per label (the generation budget)")
    max_new_tokens: int = Field(48, gt=0, description="new tokens per sample (ZeroGen: 40)")
    temperature: float = Field(1.0, gt=0, description="sampling temperature (ZeroGen: 1.0)")
    top_p: float = Field(0.9, gt=0, le=1, description="nucleus sampling mass (ZeroGen: 0.9)")
    top_k: int = Field(0, ge=0, description="top-k sampling (0 = off, as in ZeroGen)")
    min_words: int = Field(4, ge=1, description="drop generated texts shorter than this many words")
    max_words: int = Field(80, ge=1, description="drop generated texts longer than this many words")
    label_filter: Literal["none", "agree", "relabel"] = Field(
        "agree",
        description="teacher check of each sample's requested label: none (trust the prompt, pure ZeroGen), "
        "agree (keep samples the teacher's few-shot classifier agrees with), relabel (use the teacher's label)",
    )


class TrainParams(Section):
    model: str = Field("minilm-l6", description="student: minilm-l6 (embedded all-MiniLM-L6-v2) or a local model folder")
    epochs: int = Field(10, gt=0, description="maximum training epochs")
    batch_size: int = Field(32, gt=0, description="training batch size")
    lr: float = Field(1e-4, gt=0, description="AdamW peak learning rate")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay")
    warmup_ratio: float = Field(0.1, ge=0, lt=1, description="fraction of steps with linear warm-up")
    max_length: int = Field(128, gt=8, description="token limit per example")
    holdout: float = Field(0.1, ge=0, lt=1, description="fraction of the synthetic data held out for early stopping")
    patience: int = Field(3, ge=1, description="epochs without held-out improvement before stopping")
    select_on_validation: bool = Field(
        False, description="pick the best epoch on the real validation.jsonl instead of the synthetic hold-out"
    )


class EvaluateParams(Section):
    teacher_max_examples: int | None = Field(
        None, gt=0, description="score the teacher on at most this many test rows (None = all)"
    )
    batch_size: int = Field(64, gt=0, description="student inference batch size")


class RegisterParams(Section):
    experiment: str = Field("distill", description="MLflow experiment name")
    model_name: str = Field("distill-{task}", description="MLflow registered model name; {task} is filled in")
    metric: str = Field("student_accuracy", description="metric that decides whether the new model becomes @champion")


class Params(Section):
    task: str = Field("sst2", description="task folder under data/tasks/")
    method: Literal["zerogen"] = Field("zerogen", description="distillation method")
    seed: int = Field(0, description="global random seed (sampling, splits, initialisation)")
    teacher: TeacherParams = TeacherParams()
    prompts: PromptsParams = PromptsParams()
    generate: GenerateParams = GenerateParams()
    train: TrainParams = TrainParams()
    evaluate: EvaluateParams = EvaluateParams()
    register: RegisterParams = RegisterParams()


def load_params(path: str | Path = "params.yaml") -> Params:
    return load_yaml_model(path, Params)

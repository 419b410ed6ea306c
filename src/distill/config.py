"""Typed params.yaml: one pydantic model per section, unknown keys refused, help text on every field.

Read once by each stage (`load_params`) and passed down as typed objects. An error names the file and
the dotted field: `params.yaml: train.epochs: Input should be greater than 0 (got 0)`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import warnings

from pydantic import BaseModel, Field, create_model, field_validator
from pydantic_core import PydanticCustomError

from distill.core.io import DistillError, load_yaml_model
from distill.core.secrets import looks_like_key
from distill.core.sections import RUNTIME, TASK_NAME, Section, Step, check_chain  # noqa: F401 - re-exported


# `register` is a params section; pydantic warns that it shadows ABCMeta.register, which we never use.
warnings.filterwarnings("ignore", message='Field name "register"')


class TeacherParams(Section):
    backend: Literal["local", "openai"] = Field(
        "local",
        description="local: the embedded model, in-process (on teacher.device); openai: any OpenAI-compatible server "
        "(OpenAI, vLLM, Ollama, llama.cpp, `distill serve`) at base_url",
    )
    model: str = Field(
        "smollm2-135m-instruct",
        description="local: embedded model name (smollm2-135m-instruct), a .gguf file, or a local Hugging Face model "
        "folder; openai: the server's model name",
    )
    device: str = Field(
        "auto",
        pattern=r"^(auto|cpu|cuda(:\d+)?)$",
        json_schema_extra=RUNTIME,
        description="local: where the model runs: auto (the GPU when torch sees one, else the CPU) | cpu | cuda[:N]",
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto",
        json_schema_extra=RUNTIME,
        description="local: the model's precision; auto = bfloat16 on a CPU with bf16 "
        "instructions (AVX512-BF16/AMX), else float32; bfloat16 (or float16) on a GPU. Part of the LLM cache key, so "
        "answers of different precisions never mix",
    )
    base_url: str = Field(
        "http://127.0.0.1:8000/v1", pattern=r"^https?://", description="openai: the server's API root (ends in /v1)"
    )
    api_key_env: str | None = Field(
        None,
        json_schema_extra=RUNTIME,
        description="openai: NAME of the environment variable holding the API key (never the key itself); null: no key",
    )
    api: Literal["chat", "completions"] = Field(
        "chat",
        description="openai: endpoint for generation: chat (chat models; the server applies its chat template) "
        "or completions (plain-text prompt, for base models)",
    )
    prefix_as: Literal["hint", "assistant"] = Field(
        "hint",
        description="openai chat: how the answer prefix is sent: hint (appended to the user message as an "
        "instruction; portable) or assistant (a final assistant message the server continues: vLLM, llama.cpp, Ollama, distill serve)",
    )
    score_via: Literal["auto", "echo", "top_logprobs", "answer"] = Field(
        "auto",
        description="openai: how labels are scored: echo (completions prompt log-probs, exact), top_logprobs "
        "(chat, first answer token), answer (parsed reply, no confidence); auto tries them in this order",
    )
    concurrency: int = Field(8, json_schema_extra=RUNTIME, gt=0, description="openai: requests in flight at once")
    timeout_s: float = Field(
        60.0,
        json_schema_extra=RUNTIME,
        gt=0,
        description="openai: seconds before one request is abandoned (and retried)",
    )
    max_retries: int = Field(
        6,
        json_schema_extra=RUNTIME,
        ge=0,
        description="openai: retries of a request after 429, 5xx, timeouts, dropped connections or malformed replies",
    )
    retry_backoff_s: float = Field(
        1.0,
        json_schema_extra=RUNTIME,
        gt=0,
        description="openai: first retry delay; doubles per retry (jittered, at most 60 s) unless the server sends Retry-After",
    )
    price_per_1k_prompt: float | None = Field(
        None,
        json_schema_extra=RUNTIME,
        ge=0,
        description="price per 1000 prompt tokens (adds llm.cost to stage metrics); null: not tracked",
    )
    price_per_1k_completion: float | None = Field(
        None, json_schema_extra=RUNTIME, ge=0, description="price per 1000 completion tokens; null: not tracked"
    )
    max_cost: float | None = Field(
        None,
        json_schema_extra=RUNTIME,
        gt=0,
        description="stop a stage cleanly (answers so far cached) once its LLM cost reaches this; null: no limit",
    )
    max_calls: int | None = Field(
        None,
        json_schema_extra=RUNTIME,
        gt=0,
        description="stop a stage cleanly (answers so far cached) after this many uncached LLM requests; null: no limit",
    )
    batch_size: int = Field(
        32, json_schema_extra=RUNTIME, gt=0, description="sequences per forward pass when generating"
    )
    score_batch_size: int = Field(
        16, json_schema_extra=RUNTIME, gt=0, description="rows per forward pass when scoring labels"
    )
    shots_per_label: int = Field(
        4, ge=0, description="few-shot demonstrations per label (from fewshot.jsonl) in scoring prompts"
    )
    calibration: Literal["batch", "none"] = Field(
        "batch",
        description="batch: divide label probabilities by their mean over the scored set (removes a "
        "small teacher's preference for one label word); none: raw label probabilities",
    )
    max_text_chars: int = Field(1500, gt=0, description="texts are cut to this many characters inside teacher prompts")

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str) -> str:
        from urllib.parse import parse_qsl, urlsplit

        try:
            parts = urlsplit(v)
            host, _ = parts.hostname, parts.port  # .port raises on "port out of range", urlsplit on a broken IPv6 host
        except ValueError as e:
            raise PydanticCustomError("url", "not a valid URL ({reason})", {"reason": str(e)}) from None
        if not host:
            raise PydanticCustomError("url", "names no host")
        # base_url is a stage param: it lands in dvc.lock and MLflow, so it must carry no credentials
        secret_names = re.compile(r"key|token|secret|sig|pass|auth", re.I)
        if (
            parts.username
            or parts.password
            or any(secret_names.search(k) or looks_like_key(val) for k, val in parse_qsl(parts.query))
        ):
            raise PydanticCustomError(
                "secret",
                "must not carry credentials (user:password@ or a key in the query): "
                "put the key in an environment variable and name it in teacher.api_key_env",
            )
        return v

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, v: str | None) -> str | None:
        # A pasted key must not be echoed back: the "secret" error type hides the value (io.first_error).
        if v is not None and (not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", v) or looks_like_key(v)):
            raise PydanticCustomError(
                "secret", "must be the NAME of an environment variable (like OPENAI_API_KEY), not the key itself"
            )
        return v


class PromptsParams(Section):
    demos_per_prompt: int = Field(
        0,
        ge=0,
        description="real same-label examples from fewshot.jsonl shown in each generation prompt (0 = pure ZeroGen)",
    )
    assistant_prefix: str = Field(
        '"', description="text the answer is pre-filled with (ZeroGen ends prompts with an open quote)"
    )


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
    recipe: Literal["finetune", "setfit"] = Field(
        "finetune",
        description="finetune: the encoder and a linear head trained end to end on the method's data (the "
        "teacher's label distribution as soft targets, or hard labels); setfit: SetFit (contrastive pairs, then a "
        "logistic-regression head; hard labels, single-text tasks)",
    )
    model: str = Field(
        "mpnet-base",
        description="student encoder: mpnet-base (all-mpnet-base-v2, 110 M parameters: the default, above its "
        "labeller on SST-2, AG News, CR and MPQA), minilm-l6 (all-MiniLM-L6-v2, 22.7 M: ~5x faster to train and "
        "to run, 1-5 points lower) or a local model folder",
    )
    init: Literal["pretrained", "setfit"] = Field(
        "pretrained",
        description="where the student's encoder starts: pretrained = train.model as it is; setfit = SetFit's "
        "contrastive fine-tune of train.model on fewshot.jsonl (train.setfit_* settings; minutes on a CPU, kept in "
        "the prior cache and shared with llkd.fewshot_prior: setfit on the same encoder); single-text "
        "classification, recipe finetune (recipe setfit starts there anyway)",
    )
    pooling: Literal["mean", "cls"] = Field(
        "mean",
        description="sentence embedding: mean of the token states (how the "
        "embedded sentence encoders were trained) or the first token's",
    )
    epochs: int = Field(4, gt=0, description="passes over the training data (a fixed schedule: no early stopping)")
    min_steps: int = Field(200, ge=0, description="at least this many optimiser steps: small data sets get more epochs")
    batch_size: int = Field(32, gt=0, description="training batch size")
    group_by_length: bool = Field(
        True,
        description="batches of rows of similar length, drawn from random mega-batches "
        "of 50 batches (less padding: ~1.5x faster on the CPU); false = plain random batches, "
        "e.g. where a row's length nearly gives its label away (batches would be one label each)",
    )
    lr: float = Field(5e-5, gt=0, description="AdamW peak learning rate of the encoder")
    head_lr_scale: float = Field(1.0, gt=0, description="the head's learning rate = lr x this")
    head_init: Literal["probe", "random"] = Field(
        "probe",
        description="probe: fit the head on frozen embeddings before fine-tuning (LP-FT); random: a random head",
    )
    targets: Literal["soft", "hard"] = Field(
        "soft",
        description="soft: the teacher's calibrated label distribution (knowledge distillation) where a row has "
        "one; hard: one-hot labels. Rows with real or requested-and-checked labels only are one-hot either way",
    )
    kd_temperature: float = Field(
        1.0, gt=0, description="soft targets q ∝ p^(1/T): T < 1 sharpens the teacher's distribution"
    )
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay")
    warmup_ratio: float = Field(0.1, ge=0, lt=1, description="fraction of steps with linear warm-up")
    max_length: int = Field(128, gt=8, description="token limit per example")
    device: str = Field(
        "auto",
        pattern=r"^(auto|cpu|cuda(:\d+)?)$",
        json_schema_extra=RUNTIME,
        description="where the student trains and predicts: auto (the GPU when torch sees one) | cpu | cuda[:N]",
    )
    precision: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto",
        json_schema_extra=RUNTIME,
        description="training autocast: auto = float32 on the CPU, bfloat16 on GPUs "
        "that support it (else float32); weights and optimiser state stay float32",
    )
    select_on_validation: bool = Field(
        False, description="keep the epoch that scores best on the real validation.jsonl instead of the last one"
    )
    setfit_iterations: int = Field(
        20, gt=0, description="setfit: contrastive pairs drawn per training row (SetFit's num_iterations)"
    )
    setfit_batch_size: int = Field(16, gt=0, description="setfit: pairs per batch")
    setfit_lr: float = Field(2e-5, gt=0, description="setfit: the encoder's learning rate in the contrastive phase")
    setfit_max_steps: int | None = Field(
        None, gt=0, description="setfit: cap on contrastive steps (None = one pass over the pairs)"
    )
    # seq2seq tasks (kind: seq2seq): the student is a causal LM trained by the same loop, with these in place of
    # model / batch_size / lr / min_steps / max_length (epochs, warm-up, weight decay and devices are shared)
    lm_model: str = Field(
        "smollm2-135m",
        description="seq2seq student: smollm2-135m (the embedded teacher's own weights, "
        "dequantised, 135 M parameters) or a local causal-LM folder",
    )
    lm_batch_size: int = Field(8, gt=0, description="seq2seq student: training batch size")
    lm_lr: float = Field(3e-5, gt=0, description="seq2seq student: AdamW peak learning rate")
    lm_min_steps: int = Field(0, ge=0, description="seq2seq student: at least this many optimiser steps")
    lm_max_length: int = Field(256, gt=16, description="seq2seq student: token limit of problem + written answer")


class AssembleParams(Section):
    fewshot_weight: float = Field(
        1.0,
        ge=0,
        description="the task's real labelled fewshot.jsonl rows (the teacher's demonstrations) join every "
        "method's final training set with this sample weight, as one-hot targets; 0 = the method's data only",
    )


class EvaluateParams(Section):
    teacher_max_examples: int | None = Field(
        1000,
        gt=0,
        description="the teacher's baseline on at most this many test rows, and as many validation rows: a "
        "uniform sample, the same for every seed (None = all). Each row is an LLM call; the student is scored on all rows",
    )
    batch_size: int = Field(64, gt=0, json_schema_extra=RUNTIME, description="student inference batch size")


class RegisterParams(Section):
    experiment: str = Field("distill", description="MLflow experiment name")
    model_name: str = Field("distill-{task}", description="MLflow registered model name; {task} is filled in")
    metric: str = Field(
        "val_student_accuracy",
        description="metric that decides whether the new model becomes @champion "
        "(validation accuracy: the registry must not pick models on test)",
    )


class SharedParams(Section):
    """The sections every run reads; each method's own section is added from methods/registry.py (`Params` below)."""

    task: str = Field("sst2", description="task folder under data/tasks/ (a plain folder name)")
    method: str = Field("auto")  # its choices and help come from the registry (`Params` below)
    seed: int = Field(0, description="global random seed (sampling, splits, initialisation)")
    comparison: str | None = Field(
        None, description="set by `distill compare`: the MLflow tag shared by one comparison's runs"
    )
    teacher: TeacherParams = TeacherParams()
    prompts: PromptsParams = PromptsParams()
    generate: GenerateParams = GenerateParams()
    assemble: AssembleParams = AssembleParams()
    train: TrainParams = TrainParams()
    evaluate: EvaluateParams = EvaluateParams()
    register: RegisterParams = RegisterParams()

    @field_validator("task")
    @classmethod
    def _task_name(cls, v: str) -> str:
        if not re.fullmatch(TASK_NAME, v):
            raise PydanticCustomError(
                "task_name", "must be the name of a folder under data/tasks/ (letters, digits, '.', '_', '-'; no path)"
            )
        return v


def _params_model() -> type[SharedParams]:
    """params.yaml's model: the shared sections, `method` as one of the registered methods, and one section per
    method that has params (named like it), all from methods/registry.py."""
    from distill.methods.registry import NAMES, params_sections

    method = (
        Literal[("auto", *NAMES)],
        Field(
            "auto",
            description=f"distillation method: {' | '.join(NAMES)} (labelled = real labels only, a reference with no "
            "teacher); auto = llkd for a classification task with unlabelled text (unlabeled.jsonl), else zerogen "
            "(methods/auto.py)",
        ),
    )
    sections = {name: (model, Field(default_factory=model)) for name, model in params_sections().items()}
    # `register` again: a subclass would take ABCMeta.register (a method of every pydantic model class) as its default
    register = (RegisterParams, Field(default_factory=RegisterParams))
    return create_model(
        "Params", __base__=SharedParams, __module__=__name__, method=method, register=register, **sections
    )


Params = _params_model()


def runtime_keys(model: type[BaseModel] = None, prefix: str = "") -> set[str]:
    """Dotted keys of the fields marked runtime (how fast or how patiently, never what comes out): no stage
    declares them in dvc.yaml, so changing a timeout re-runs nothing."""
    model = model or Params
    keys = set()
    for name, f in model.model_fields.items():
        extra = f.json_schema_extra if isinstance(f.json_schema_extra, dict) else {}
        if extra.get("runtime"):
            keys.add(prefix + name)
        ann = f.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            keys |= runtime_keys(ann, prefix + name + ".")
    return keys


def load_params(path: str | Path = "params.yaml") -> Params:
    try:
        return load_yaml_model(path, Params)
    except DistillError as e:
        if getattr(e, "secret", None):  # a pasted key: out of params.yaml and git before DVC can keep it
            from distill.core.secrets import scrub

            raise DistillError(f"{e} (the value: {scrub(path, e.secret)})") from None
        raise

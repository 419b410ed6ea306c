"""`device: auto | cpu | cuda` and precision, decided without a GPU; the non-float32 paths run on the CPU."""

import pytest
import torch

from distill.config import Params, TrainParams
from distill.core.devices import resolve_device, resolve_dtype
from distill.core.io import DistillError


def test_device_choice():
    assert resolve_device("auto", "f", has_cuda=False) == "cpu"
    assert resolve_device("auto", "f", has_cuda=True) == "cuda"
    assert resolve_device("cpu", "f", has_cuda=True) == "cpu"
    assert resolve_device("cuda:1", "f", has_cuda=True) == "cuda:1"
    with pytest.raises(DistillError, match="train.device: cuda asked, but torch sees no GPU"):
        resolve_device("cuda", "train.device", has_cuda=False)


def test_precision_choice():
    from conftest import CPU_BF16_PROBE

    assert CPU_BF16_PROBE() in (True, False)  # torch's private probes answer (or the guard says no)
    assert resolve_dtype("auto", "cpu", training=False, bf16=False) == torch.float32  # emulated bf16 is slower
    assert resolve_dtype("auto", "cpu", training=False, bf16=True) == torch.bfloat16  # AVX512-BF16 / AMX: the teacher
    assert resolve_dtype("auto", "cpu", training=True, bf16=True) == torch.float32  # the student trains in float32
    assert resolve_dtype("auto", "cuda", training=False, bf16=True) == torch.bfloat16
    assert resolve_dtype("auto", "cuda", training=True, bf16=True) == torch.bfloat16
    assert resolve_dtype("auto", "cuda", training=False, bf16=False) == torch.float16  # inference: fp16 is safe
    assert (
        resolve_dtype("auto", "cuda", training=True, bf16=False) == torch.float32
    )  # training: no loss scaling by default
    assert resolve_dtype("float16", "cuda", training=True) == torch.float16


def test_params_refuse_an_unknown_device():
    with pytest.raises(Exception, match="device"):
        Params.model_validate({"train": {"device": "gpu"}})
    assert Params.model_validate({"teacher": {"device": "cuda:0"}}).teacher.device == "cuda:0"


def test_cuda_without_a_gpu_is_one_clear_error(tiny_student, monkeypatch):
    from distill.students import train_student

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cfg = TrainParams(model=str(tiny_student), device="cuda", epochs=1, min_steps=0)
    with pytest.raises(DistillError, match="train.device: cuda asked"):
        train_student([{"text": "a", "label": "x"}, {"text": "b", "label": "y"}], ["x", "y"], ["text"], cfg, seed=0)


def test_serve_on_cuda_without_a_gpu_names_its_option(tiny_llm, monkeypatch):
    from distill.teachers.serve import serve

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DistillError, match=r"distill serve --device: cuda asked, but torch sees no GPU"):
        serve(str(tiny_llm), None, "127.0.0.1", 0, 5, 8, device="cuda")


@pytest.mark.parametrize("precision", ["bfloat16", "float16"])
def test_mixed_precision_training_runs(tiny_student, precision, monkeypatch):
    """The autocast (and, for float16, loss-scaling) path of the training loop, exercised on the CPU."""
    from distill.students import finetune, train_student

    casts, scalers = [], []
    real_autocast, real_scaler = finetune.autocast, torch.amp.GradScaler
    monkeypatch.setattr(finetune, "autocast", lambda device, dtype: casts.append(dtype) or real_autocast(device, dtype))
    monkeypatch.setattr(
        torch.amp, "GradScaler", lambda *a, **kw: scalers.append(kw.get("enabled")) or real_scaler(*a, **kw)
    )
    rows = [{"text": t, "label": lab} for t, lab in [("great fun", "pos"), ("awful mess", "neg")] * 16]
    cfg = TrainParams(
        model=str(tiny_student), device="cpu", precision=precision, epochs=3, lr=1e-3, batch_size=8, min_steps=0
    )
    student, history = train_student(rows, ["neg", "pos"], ["text"], cfg, seed=0)
    assert all(torch.isfinite(torch.tensor(h["train_loss"])) for h in history)
    assert student.head.weight.dtype == torch.float32  # weights stay float32 under autocast
    assert casts and set(casts) == {getattr(torch, precision)}  # every step ran under the precision asked
    assert scalers == [precision == "float16"]  # loss scaling for float16 only


def test_teacher_precision_is_part_of_the_cache_key(tiny_llm):
    from distill.teachers.base import Decoding, GenRequest
    from distill.teachers.local import LocalBackend

    fp32, bf16 = LocalBackend(str(tiny_llm), device="cpu"), LocalBackend(str(tiny_llm), device="cpu", dtype="bfloat16")
    assert bf16.model_id == fp32.model_id + "+bfloat16"
    out = bf16.generate([GenRequest((("user", "Say something."),), seed=1)], Decoding(max_new_tokens=4))
    assert out[0].completion_tokens > 0 and bf16._model.dtype == torch.bfloat16
    assert bf16.score([]) == []

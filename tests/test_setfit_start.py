"""train.init: setfit: the student's encoder starts from SetFit's contrastive fine-tune of train.model on the fewshot
rows (the fit llkd.fewshot_prior: setfit makes on the same encoder, kept once in the prior cache)."""

from types import SimpleNamespace

import pytest
import torch

from conftest import make_toy_seq2seq, write_params
from distill.config import load_params
from distill.core.io import DistillError, write_jsonl
from distill.core.tasks import load_task


def weights(folder) -> dict[str, torch.Tensor]:
    from distill.students.model import load_student

    return load_student(folder).state_dict()


def test_the_student_starts_from_setfit_s_encoder_and_shares_the_prior_s_fit(
    tmp_path, toy_task, tiny_student, monkeypatch
):
    from distill.stages import train
    from distill.students import prior

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DISTILL_PRIOR_CACHE", str(tmp_path / "prior"))
    task = load_task(toy_task, quiet=True)
    write_jsonl("w/train.jsonl", task.load("validation"))
    cfg = {"model": str(tiny_student), "setfit_iterations": 2, "epochs": 1, "lr": 1e-3, "batch_size": 8, "min_steps": 0}

    def trained(out: str, **train_cfg) -> dict[str, torch.Tensor]:
        p = load_params(write_params(tmp_path / "params.yaml", task="toy", method="zerogen", train=train_cfg))
        train.run(p, str(toy_task), "w/train.jsonl", out, f"m/{out}.json")
        return weights(out)

    from_setfit = trained("models/a", **cfg, init="setfit")
    fits = [f for f in (tmp_path / "prior").iterdir() if not f.name.startswith(".")]
    assert len(fits) == 1  # one SetFit fit, in the prior cache
    # the same student as one trained with that fit as its pretrained encoder: the stage started there
    same = trained("models/b", **{**cfg, "model": str(fits[0])})
    assert all(torch.equal(from_setfit[k], same[k]) for k in from_setfit)
    plain = trained("models/c", **cfg)
    assert not all(torch.equal(from_setfit[k], plain[k]) for k in from_setfit)  # ... not from train.model itself

    # llkd.fewshot_prior: setfit on the same encoder loads that fit instead of fitting again
    p = load_params(
        write_params(
            tmp_path / "params.yaml",
            task="toy",
            train=cfg,
            llkd={"fewshot_prior": "setfit", "prior_model": str(tiny_student)},
        )
    )
    prior._FITTED.clear()
    assert prior.fit_reference(p, task.spec, task.load("fewshot")) is not None
    assert [f for f in (tmp_path / "prior").iterdir() if not f.name.startswith(".")] == fits


def test_a_setfit_start_needs_single_text_classification_and_is_one_error_otherwise(tmp_path, tiny_student):
    from distill.students.prior import start_encoder

    tc = load_params(write_params(tmp_path / "p.yaml", train={"model": str(tiny_student), "init": "setfit"})).train
    pair = SimpleNamespace(
        name="pairs", label_names=["yes", "no"], field_names=["premise", "hypothesis"], seq2seq=False
    )
    rows = [{"premise": "a", "hypothesis": "b", "label": y} for y in ("yes", "no")]
    with pytest.raises(DistillError, match=r"^train.init: setfit embeds single texts; this task has text pairs"):
        start_encoder(tc, 0, pair, rows)
    svamp = load_task(make_toy_seq2seq(tmp_path / "s"), quiet=True)
    with pytest.raises(DistillError, match=r"^train.init: setfit starts a classifier's encoder"):
        start_encoder(tc, 0, svamp.spec, svamp.load("fewshot"))
    setfit = tc.model_copy(update={"recipe": "setfit"})
    assert start_encoder(setfit, 0, pair, rows) is setfit  # the setfit recipe is SetFit already: nothing to start
    assert not (tmp_path / ".cache").exists()  # nothing fitted, nothing half-written


@pytest.mark.parametrize("method", ["gold", "s3"])
def test_gold_and_s3_round_students_start_from_setfit_too(
    method, tmp_path, toy_task, fake_backend, tiny_student, monkeypatch
):
    """Their round students (GOLD's refresh, S3's error-finding student) train from the same SetFit start."""
    from distill.methods.gold import stages as gold
    from distill.methods.gold import start as gold_start
    from distill.methods.s3 import stages as s3
    from distill import students

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DISTILL_PRIOR_CACHE", str(tmp_path / "prior"))
    started_from = []
    real = students.train_student
    monkeypatch.setattr(
        "distill.students.train_student",
        lambda rows, l, f, cfg, *a, **kw: started_from.append(cfg.model) or real(rows, l, f, cfg, *a, **kw),
    )
    params = load_params(
        write_params(
            tmp_path / "params.yaml",
            task="toy",
            method=method,
            generate={"min_words": 3},
            train={"model": str(tiny_student), "init": "setfit", "setfit_iterations": 2, "epochs": 1, "min_steps": 0},
            gold={"iterations": [{"i": 1, "prev": 0}], "train_per_iter": 4, "val_per_iter": 4, "n_feedback": 1},
            s3={"seed_per_label": 4, "n_rationales": 2, "max_extrapolations": 2},
        )
    )
    if method == "gold":
        gold_start.run("g/iter_0")
        gold.iterate(params, str(toy_task), 1, "g/iter_0", "g/iter_1", "m/g1.json")
    else:
        s3.seed(params, str(toy_task), "s/round_0", "m/s3_0.json")
        s3.round_(params, str(toy_task), 1, "s/round_0", "s/round_1", "m/s3_1.json")
    fits = [str(f) for f in (tmp_path / "prior").iterdir() if not f.name.startswith(".")]
    assert len(fits) == 1 and started_from == fits  # one round student, from the one SetFit fit

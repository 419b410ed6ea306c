"""evaluate scores the labeller (what the student was trained to imitate) beside the teacher and the student, on the
teacher's rows: LLKD's teacher x few-shot prior, the teacher's own label check for generation methods, none for real
labels."""

import json

import torch

from conftest import write_params
from distill.config import load_params
from distill.core.metrics import accuracy


def evaluated(tmp_path, toy_task, name: str, **sections) -> dict:
    from distill.methods.auto import resolve
    from distill.stages import evaluate

    params = resolve(load_params(write_params(tmp_path / f"{name}.yaml", task="toy", **sections)), toy_task)
    evaluate.run(params, str(toy_task), "models/student", f"m/{name}.json", "plots/confusion.json")
    return json.loads((tmp_path / f"m/{name}.json").read_text())


def test_labeller_is_scored_on_the_teachers_rows(tmp_path, toy_task, fake_backend, tiny_student, monkeypatch):
    from distill.methods.llkd.algorithm import with_prior
    from distill.stages import evaluate
    from distill.students.model import new_student
    from distill.students.prior import fewshot_probe
    from distill.core.tasks import load_task

    monkeypatch.chdir(tmp_path)
    task = load_task(toy_task, quiet=True)
    labels = task.spec.label_names
    new_student(tiny_student, labels, ["text"], 0).save_pretrained(
        "models/student"
    )  # an untrained student: evaluate only reads it
    sure = fake_backend.score  # the fake teacher is all but certain: soften it, so that the prior can move it
    monkeypatch.setattr(fake_backend, "score", lambda requests: [[0.05 * x for x in s] for s in sure(requests)])
    common = dict(train={"model": str(tiny_student)}, evaluate={"teacher_max_examples": 10})
    llkd = dict(method="llkd", llkd={"prior_weight": 10.0, "prior_model": "student"}, **common)
    m = evaluated(tmp_path, toy_task, "llkd", **llkd)

    # the labeller by hand: the teacher's distribution on the same 10 capped test rows, times the probe's
    params = load_params(tmp_path / "llkd.yaml")
    rows = evaluate.capped(task.load("test"), 10)
    from distill.synthesis import classify
    from distill.teachers import make_teacher

    probs, _ = classify(
        make_teacher(params.teacher), task.spec, rows, task.load("fewshot"), params.teacher, params.seed
    )
    prior = fewshot_probe(params, task.spec, task.load("fewshot"), rows)
    expected = with_prior(torch.tensor(probs), prior, 10.0)
    gold = [r["label"] for r in rows]
    assert m["labeller_accuracy"] == accuracy(gold, [labels[int(p.argmax())] for p in expected])
    assert (expected - torch.tensor(probs)).abs().max() > 0.05  # the prior moved the teacher's: the check has teeth
    assert m["teacher_n_test"] == 10 and m["n_test"] == 40 and "val_labeller_accuracy" in m
    assert {
        "student_accuracy_teacher_rows",
        "val_student_accuracy_teacher_rows",
        "labeller_macro_f1",
        "val_student_macro_f1",
        "val_teacher_macro_f1",
        "val_labeller_macro_f1",
    } <= set(m)

    # generation methods: the labeller is the teacher's label check, the same numbers; real labels: no labeller
    zerogen = evaluated(tmp_path, toy_task, "zerogen", method="zerogen", **common)
    assert zerogen["labeller_accuracy"] == zerogen["teacher_accuracy"] == m["teacher_accuracy"]
    assert zerogen["val_labeller_accuracy"] == zerogen["val_teacher_accuracy"]
    unchecked = evaluated(tmp_path, toy_task, "none", method="zerogen", generate={"label_filter": "none"}, **common)
    labelled = evaluated(tmp_path, toy_task, "labelled", method="labelled", **common)
    assert "labeller_accuracy" not in unchecked and "labeller_accuracy" not in labelled
    # the student on the teacher's rows: its predictions at those rows' positions
    assert m["student_accuracy_teacher_rows"] == zerogen["student_accuracy_teacher_rows"]


def test_the_run_says_whether_the_teacher_adds_anything_to_the_fewshot_labels(
    tmp_path, toy_task, fake_backend, tiny_student, monkeypatch
):
    """evaluate scores what the fewshot labels alone give (the probe, whatever llkd.fewshot_prior says) on the
    validation rows the labeller is scored on; a labeller no better than that is said plainly, in evaluate's line and
    in `distill summary`."""
    from click.testing import CliRunner

    from distill.cli import cli
    from distill.students.model import new_student
    from distill.students.prior import fewshot_reference
    from distill.core.tasks import load_task

    monkeypatch.chdir(tmp_path)
    task = load_task(toy_task, quiet=True)
    new_student(tiny_student, task.spec.label_names, ["text"], 0).save_pretrained("models/student")
    common = dict(train={"model": str(tiny_student)}, evaluate={"teacher_max_examples": 10})
    prior = {"prior_model": "student", "fewshot_prior": "none"}  # the reference does not need LLKD's prior
    m = evaluated(tmp_path, toy_task, "llkd", method="llkd", llkd=prior, **common)
    params = load_params(tmp_path / "llkd.yaml")
    from distill.stages import evaluate

    val = evaluate.capped(task.load("validation"), 10)
    ref = fewshot_reference(params, task.spec, task.load("fewshot"), val)
    expected = accuracy([r["label"] for r in val], [task.spec.label_names[int(p.argmax())] for p in ref])
    assert m["val_reference_accuracy"] == expected and "val_reference_macro_f1" in m
    assert m["val_teacher_gain"] == m["val_labeller_accuracy"] - expected

    # a teacher that is always wrong adds nothing: said in the summary
    wrong = fake_backend.score
    monkeypatch.setattr(fake_backend, "score", lambda requests: [list(reversed(s)) for s in wrong(requests)])
    monkeypatch.setenv("DISTILL_LLM_CACHE", str(tmp_path / "other-llm.sqlite"))  # not the right answers cached above
    bad = evaluated(tmp_path, toy_task, "bad", method="zerogen", llkd=prior, **common)
    assert bad["val_teacher_accuracy"] == 0 and bad["val_teacher_gain"] < 0
    out = CliRunner().invoke(cli, ["summary", "--metrics", "m/bad.json", "--registered", "none.json"]).output
    assert "the teacher adds nothing on this task" in out and "method=labelled" in out


def test_a_setfit_prior_is_setfit_on_the_fewshot_rows_in_llkd_label_and_evaluate(
    tmp_path, toy_task, fake_backend, tiny_student, monkeypatch
):
    """llkd.fewshot_prior: setfit: the pool's label distribution is the teacher's times SetFit's (trained on
    fewshot.jsonl with train.setfit_*; a fresh fit here gives the same: deterministic for a seed), not the probe's.
    It is fitted once and kept in the prior cache, where evaluate loads it for the labeller and the few-shot
    reference."""
    from distill.core.io import read_jsonl
    from distill.core.tasks import load_task
    from distill.methods.llkd import stages as llkd
    from distill.methods.llkd.algorithm import with_prior
    from distill.stages import evaluate
    from distill.students import prior as fewshot_prior
    from distill.students.model import new_student
    from distill.students.setfit_recipe import train_setfit

    monkeypatch.chdir(tmp_path)
    task = load_task(toy_task, quiet=True)
    labels, fewshot = task.spec.label_names, task.load("fewshot")
    sure = fake_backend.score  # the fake teacher is all but certain: soften it, so that the prior can move it
    monkeypatch.setattr(fake_backend, "score", lambda requests: [[0.05 * x for x in s] for s in sure(requests)])
    sections = dict(
        method="llkd",
        train={"model": str(tiny_student), "setfit_iterations": 2},
        llkd={"pool_size": 12, "prior_weight": 10.0, "prior_model": "student", "fewshot_prior": "setfit"},
        evaluate={"teacher_max_examples": 10},
    )
    params = load_params(write_params(tmp_path / "params.yaml", task="toy", **sections))
    llkd.run(params, str(toy_task), "w/pseudo.jsonl", "m/llkd_label.json")
    rows = read_jsonl("w/pseudo.jsonl")
    setfit = train_setfit(fewshot, labels, ["text"], tiny_student, params.train, params.seed, "toy", log=lambda _: None)
    llm = torch.tensor([[r["meta"]["llm_probs"][k] for k in labels] for r in rows])
    got = torch.tensor([[r["meta"]["teacher_probs"][k] for k in labels] for r in rows])
    assert torch.allclose(got, with_prior(llm, setfit.proba(rows), 10.0), atol=2e-3)
    probe = fewshot_prior.fewshot_probe(
        params.model_copy(update={"llkd": params.llkd.model_copy(update={"fewshot_prior": "probe"})}),
        task.spec,
        fewshot,
        rows,
    )
    assert not torch.allclose(got, with_prior(llm, probe, 10.0), atol=2e-3)  # SetFit, not the probe

    assert len(list(fewshot_prior.prior_cache().iterdir())) == 2  # one fit (and its lock file) for both stages
    # what SetFit does not read finds the same fit: the probe's C, and the student once the prior names its encoder
    llkd_same = params.llkd.model_copy(update={"prior_c": 0.5, "prior_model": str(tiny_student)})
    same = params.model_copy(update={"llkd": llkd_same, "train": params.train.model_copy(update={"model": "x"})})
    fewshot_prior._FITTED.clear()
    assert torch.equal(fewshot_prior.fit_reference(same, task.spec, fewshot)(rows), setfit.proba(rows))
    assert len(list(fewshot_prior.prior_cache().iterdir())) == 2
    fewshot_prior._FITTED.clear()  # as in evaluate's own process: loaded from the prior cache
    new_student(tiny_student, labels, ["text"], 0).save_pretrained("models/student")
    m = evaluated(tmp_path, toy_task, "setfit", **sections)
    val = evaluate.capped(task.load("validation"), 10)
    expected = accuracy([r["label"] for r in val], [labels[int(p.argmax())] for p in setfit.proba(val)])
    assert m["val_reference_accuracy"] == expected


def test_a_setfit_prior_on_text_pairs_is_one_error_naming_the_field(tmp_path, tiny_student, monkeypatch):
    from types import SimpleNamespace

    import pytest

    from distill.core.io import DistillError
    from distill.students.prior import fewshot_reference

    monkeypatch.chdir(tmp_path)
    params = load_params(
        write_params(
            tmp_path / "p.yaml",
            train={"model": str(tiny_student)},
            llkd={"fewshot_prior": "setfit", "prior_model": "student"},
        )
    )
    pair = SimpleNamespace(name="pairs", label_names=["yes", "no"], field_names=["premise", "hypothesis"])
    rows = [{"premise": "a", "hypothesis": "b", "label": y} for y in ("yes", "no")]
    with pytest.raises(DistillError, match=r"^llkd.fewshot_prior: setfit embeds single texts"):
        fewshot_reference(params, pair, rows, rows)
    assert not (tmp_path / ".cache").exists()  # nothing fitted, nothing half-written

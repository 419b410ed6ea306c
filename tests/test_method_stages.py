"""GOLD, LLKD and S3 stages on a fake LLM and a tiny student: iterations, selection, prompts, what each may read."""

import json
import math

import pytest
import torch

from conftest import write_jsonl, write_params
from distill.config import load_params
from distill.core.io import DistillError, read_jsonl
from distill.stages import train


def test_gold_two_iterations_on_fake_llm(tmp_path, toy_task, fake_backend, tiny_student, monkeypatch):
    from distill.stages import assemble
    from distill.methods.gold import stages as gold
    from distill.methods.gold import start as gold_start

    monkeypatch.chdir(tmp_path)
    params = load_params(
        write_params(
            tmp_path / "params.yaml",
            task="toy",
            method="gold",
            generate={"min_words": 3},
            train={"model": str(tiny_student), "epochs": 2, "lr": 1e-3, "batch_size": 8, "min_steps": 0},
            gold={
                "iterations": [{"i": 1, "prev": 0}, {"i": 2, "prev": 1}],
                "train_per_iter": 8,
                "val_per_iter": 8,
                "n_feedback": 2,
                "feedback_ratio": 1.0,
                "final_epochs": 1,
            },
            evaluate={"teacher_max_examples": 10},
        )
    )
    task = str(toy_task)
    gold_start.run("g/iter_0")
    gold.iterate(params, task, 1, "g/iter_0", "g/iter_1", "m/gold/iter_1.json")
    fb1 = json.loads((tmp_path / "g/iter_1/feedback.json").read_text())
    assert 0 < len(fb1) <= 4 and all("energy" in f for f in fb1)  # up to n_feedback per label
    # the feedback is each label's [50th, 80th) energy band of iteration 1's val block, as select_feedback picks it
    from distill.methods.gold.algorithm import select_feedback

    val1 = [r for r in read_jsonl("g/iter_1/data.jsonl") if r["source"] == "llm_val"]
    for label in ("negative", "positive"):
        block = [r for r in val1 if r["label"] == label]
        gp = params.gold
        assert (gp.feedback, gp.n_feedback) == ("band", 2)
        picked = select_feedback(
            [r["meta"]["energy"] for r in block], gp.feedback, gp.n_feedback, gp.ood_lo, gp.ood_hi, params.seed + 1
        )
        assert [f["id"] for f in fb1 if f["label"] == label] == [block[j]["id"] for j in picked]
    prompts_seen = []
    real_generate = fake_backend.generate
    monkeypatch.setattr(
        fake_backend,
        "generate",
        lambda reqs, dec: (
            prompts_seen.extend(" ".join(c for _, c in r.messages) for r in reqs) or real_generate(reqs, dec)
        ),
    )
    calls = fake_backend.calls
    gold.iterate(params, task, 2, "g/iter_1", "g/iter_2", "m/gold/iter_2.json")
    assert fake_backend.calls > calls
    # iteration 2's prompts showed iteration 1's feedback as demonstrations, each in prompts for its own label only
    for f in fb1:
        shown = [p for p in prompts_seen if f["text"] in p]
        assert shown and all(f["label"] in p for p in shown)
    reqs = [r for r in read_jsonl("g/iter_2/data.jsonl") if r["round"] == 2]
    assert reqs and all(r["source"] in ("llm_gen", "llm_val") for r in reqs)
    m2 = json.loads((tmp_path / "m/gold/iter_2.json").read_text())
    assert m2["iteration"] == 2 and m2["total"] == len(read_jsonl("g/iter_2/data.jsonl"))
    assert m2["total"] > json.loads((tmp_path / "m/gold/iter_1.json").read_text())["total"]  # cumulative
    assert {"energy_mean", "energy_std", "val_accuracy"} <= set(m2)
    assert all("energy" in r["meta"] for r in read_jsonl("g/iter_2/data.jsonl") if r["source"] == "llm_val")

    assemble.run(
        params,
        task,
        {"zerogen": "unused.jsonl", "gold": "g", "llkd": "unused", "s3": "unused"},
        "w/train.jsonl",
        "m/data.json",
        "plots/iterations.tsv",
    )
    assert len(read_jsonl("w/train.jsonl")) == m2["total"] + 8  # every iteration's data + the 8 real fewshot rows
    tsv = (tmp_path / "plots/iterations.tsv").read_text().splitlines()
    assert tsv[0].split("\t")[:3] == ["iteration", "val_accuracy", "energy_mean"] and len(tsv) == 3
    train.run(params, task, "w/train.jsonl", "models/student", "m/train.json")  # SCE loss path
    assert json.loads((tmp_path / "m/train.json").read_text())["epochs_run"] == 1  # gold.final_epochs, not train.epochs

    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["distill"])
    assert sorted(runs["tags.iteration"].tolist()) == ["1", "2"] and set(runs["tags.method"]) == {"gold"}

    # a validation block that keeps nothing (here: none asked) leaves the last feedback in place
    fb2 = json.loads((tmp_path / "g/iter_2/feedback.json").read_text())
    gold.iterate(
        params.model_copy(update={"gold": params.gold.model_copy(update={"val_per_iter": 0})}),
        task,
        3,
        "g/iter_2",
        "g/iter_3",
        "m/gold/iter_3.json",
    )
    assert json.loads((tmp_path / "g/iter_3/feedback.json").read_text()) == fb2 and fb2
    assert json.loads((tmp_path / "m/gold/iter_3.json").read_text())["feedback_carried"] == len(fb2)


def test_gold_prompts_show_feedback_as_numbered_demos(toy_task):
    from distill.methods.gold.algorithm import VAL_INSTRUCTION, iteration_requests
    from distill.core.tasks import load_task

    spec = load_task(toy_task).spec
    real = {"negative": ["a dull film"], "positive": ["a great film"]}
    fb = {"positive": ["a hard, odd positive one"]}
    reqs = iteration_requests(spec, 2, 4, 2, real, [], fb, 1, 1.0, '"', 0, "t")
    pos_train = [r for r in reqs if r["label"] == "positive" and r["block"] == "train"]
    text = pos_train[0]["messages"][0][1]
    assert '1. "a great film"' in text and '2. "a hard, odd positive one"' in text
    assert all(VAL_INSTRUCTION in r["messages"][0][1] for r in reqs if r["block"] == "val")
    assert all(VAL_INSTRUCTION not in r["messages"][0][1] for r in reqs if r["block"] == "train")
    assert len({r["id"] for r in reqs}) == 6


@pytest.mark.parametrize("selection", ["adaptive", "random"])
def test_llkd_pseudo_labels_and_selects_online(tmp_path, toy_task, fake_backend, tiny_student, monkeypatch, selection):
    from distill.stages import assemble
    from distill.methods.llkd import stages as llkd

    monkeypatch.chdir(tmp_path)
    params = load_params(
        write_params(
            tmp_path / "params.yaml",
            task="toy",
            method="llkd",
            train={"model": str(tiny_student), "epochs": 2, "lr": 1e-3, "batch_size": 8, "min_steps": 0},
            llkd={
                "pool_size": 24,
                "selection": selection,
                "fraction": 0.5,
                "momentum": 0.0,
            },  # thresholds = each batch's means
        )
    )
    task = str(toy_task)
    llkd.run(params, task, "w/pseudo.jsonl", "m/llkd_label.json")
    pseudo = read_jsonl("w/pseudo.jsonl")
    assert len(pseudo) == 24 and fake_backend.calls == 24
    for r in pseudo:
        probs = r["meta"]["teacher_probs"]
        assert r["label"] == max(probs, key=probs.get) and r["meta"]["confidence"] == max(probs.values())
    assert "label" not in (toy_task / "unlabeled.jsonl").read_text()  # the pool really was unlabelled

    assemble.run(
        params,
        task,
        {"zerogen": "unused", "gold": "unused", "llkd": "w/pseudo.jsonl", "s3": "unused"},
        "w/train.jsonl",
        "m/data.json",
        "plots/iterations.tsv",
    )
    rows = read_jsonl("w/train.jsonl")
    real = [r for r in rows if r["source"] == "fewshot"]  # the task's real labels join every method's data
    assert len(rows) == 24 + 8 and len(real) == 8
    assert all(r["meta"]["teacher_probs"][r["label"]] == 1.0 == r["meta"]["confidence"] for r in real)
    train.run(params, task, "w/train.jsonl", "models/student", "m/train.json", "plots/history.json")
    history = json.loads((tmp_path / "plots/history.json").read_text())
    assert len(history) == 2
    for h in history:
        assert 0 < h["selected_fraction"] <= 1 and 0 < h["distinct_selected_fraction"] <= 1
        assert {"tau_teacher.0", "tau_teacher.1", "tau_student.0", "tau_student.1"} <= set(h)
    if selection == "random":
        assert history[-1]["distinct_selected_fraction"] == pytest.approx(0.5)
    if selection == "adaptive":  # it selects: not every row every epoch, and the thresholds left their start
        assert min(h["selected_fraction"] for h in history) < 1
        assert history[-1]["tau_teacher.0"] != pytest.approx(0.5) and history[-1]["tau_student.0"] != pytest.approx(
            math.log(2) / 2
        )


def test_llkd_fewshot_prior_multiplies_the_teachers_labels_by_a_probe(
    tmp_path, toy_task, fake_backend, tiny_student, monkeypatch, capsys
):
    """llkd.fewshot_prior: the pseudo-label distribution is the teacher's times a logistic-regression probe fitted on
    fewshot.jsonl's normalised embeddings (the same fit as scikit-learn's, C = prior_c); `none` keeps the teacher's."""
    from sklearn.linear_model import LogisticRegression

    from distill.methods.llkd.algorithm import with_prior
    from distill.methods.llkd import stages as llkd
    from distill.students.model import new_student
    from distill.core.tasks import load_task

    monkeypatch.chdir(tmp_path)
    sure = fake_backend.score  # the fake teacher is all but certain: soften it, so that a product can move it
    monkeypatch.setattr(fake_backend, "score", lambda requests: [[0.05 * x for x in s] for s in sure(requests)])
    base = dict(
        task="toy",
        method="llkd",
        train={"model": str(tiny_student)},
        llkd={"pool_size": 12, "prior_weight": 10.0, "prior_model": "student"},
    )
    params = load_params(write_params(tmp_path / "params.yaml", **base))
    llkd.run(params, str(toy_task), "w/pseudo.jsonl", "m/llkd_label.json")
    rows = read_jsonl("w/pseudo.jsonl")
    task = load_task(toy_task, quiet=True)
    fewshot, labels = task.load("fewshot"), task.spec.label_names
    encoder = new_student(tiny_student, labels, ["text"], 0, normalize=True)
    reference = LogisticRegression(C=params.llkd.prior_c).fit(
        encoder.embeddings(fewshot).numpy(), [labels.index(r["label"]) for r in fewshot]
    )
    prior = torch.tensor(reference.predict_proba(encoder.embeddings(rows).numpy()), dtype=torch.float32)
    llm = torch.tensor([[r["meta"]["llm_probs"][l] for l in labels] for r in rows])
    expected = with_prior(llm, prior, 10.0)  # a random tiny encoder gives a weak probe: a large weight shows it
    got = torch.tensor([[r["meta"]["teacher_probs"][l] for l in labels] for r in rows])
    assert torch.allclose(got, expected, atol=2e-3), (got, expected)
    assert (got - llm).abs().max() > 0.05  # the probe moved the teacher's distribution: the check above has teeth
    assert all(
        r["label"] == labels[int(p.argmax())] and r["meta"]["confidence"] == pytest.approx(float(p.max()), abs=1e-4)
        for r, p in zip(rows, got)
    )
    assert "prior_changed_labels" in json.loads((tmp_path / "m/llkd_label.json").read_text())

    off = load_params(
        write_params(tmp_path / "off.yaml", **{**base, "llkd": {**base["llkd"], "fewshot_prior": "none"}})
    )
    llkd.run(off, str(toy_task), "w/off.jsonl", "m/off.json")
    plain = read_jsonl("w/off.jsonl")
    assert [r["meta"]["teacher_probs"] for r in plain] == [r["meta"]["llm_probs"] for r in rows]  # the teacher's alone
    assert all("llm_probs" not in r["meta"] for r in plain)

    # llkd.pool_chars: the same shuffled pool, cut where its text would pass the character budget
    cut = {
        **base,
        "llkd": {**base["llkd"], "fewshot_prior": "none", "pool_chars": sum(len(r["text"]) for r in plain[:5]) + 1},
    }
    llkd.run(load_params(write_params(tmp_path / "cut.yaml", **cut)), str(toy_task), "w/cut.jsonl", "m/cut.json")
    assert [r["id"] for r in read_jsonl("w/cut.jsonl")] == [r["id"] for r in plain[:5]]
    assert json.loads((tmp_path / "m/cut.json").read_text())["pool"] == 5

    # llkd.prior_model: the probe's encoder, whatever the student's; a bad one is one error naming that field
    own = {
        **base,
        "train": {"model": str(tmp_path / "no-such-student")},
        "llkd": {**base["llkd"], "prior_model": str(tiny_student)},
    }
    llkd.run(load_params(write_params(tmp_path / "own.yaml", **own)), str(toy_task), "w/own.jsonl", "m/own.json")
    assert [r["meta"]["teacher_probs"] for r in read_jsonl("w/own.jsonl")] == [r["meta"]["teacher_probs"] for r in rows]
    bad = {**base, "llkd": {**base["llkd"], "prior_model": str(tmp_path / "no-such-encoder")}}
    with pytest.raises(DistillError, match=r"^llkd.prior_model: .*no-such-encoder"):
        llkd.run(load_params(write_params(tmp_path / "bad.yaml", **bad)), str(toy_task), "w/bad.jsonl", "m/bad.json")
    assert not (tmp_path / "w/bad.jsonl").exists()

    write_jsonl(
        toy_task / "fewshot.jsonl", [r for r in read_jsonl(toy_task / "fewshot.jsonl") if r["label"] == "positive"]
    )
    llkd.run(params, str(toy_task), "w/one.jsonl", "m/one.json")  # a label without a fewshot row: no prior, said so
    assert "no few-shot prior" in capsys.readouterr().out
    assert [r["meta"]["teacher_probs"] for r in read_jsonl("w/one.jsonl")] == [
        r["meta"]["teacher_probs"] for r in plain
    ]


def test_methods_do_not_touch_each_others_stages(tmp_path, toy_task, fake_backend, monkeypatch):
    from distill.methods.gold import stages as gold
    from distill.methods.llkd import stages as llkd

    monkeypatch.chdir(tmp_path)
    params = load_params(write_params(tmp_path / "params.yaml", task="toy", method="zerogen"))
    gold.iterate(params, str(toy_task), 1, "nope", "g/iter_1", "m/g1.json")
    llkd.run(params, str(toy_task), "w/pseudo.jsonl", "m/l.json")
    assert fake_backend.calls == 0
    assert read_jsonl("g/iter_1/data.jsonl") == [] and read_jsonl("w/pseudo.jsonl") == []


def test_s3_seed_and_round_never_touch_test_or_copy_gold(tmp_path, toy_task, fake_backend, tiny_student, monkeypatch):
    from distill.methods.s3 import stages as s3
    from distill.core.tasks import Task

    monkeypatch.chdir(tmp_path)
    loaded, checking = [], []
    real_load, real_check = Task.load, Task.check

    def check(self):  # reading test.jsonl to check its rows before any LLM call is fine; using it is not
        checking.append(1)
        try:
            return real_check(self)
        finally:
            checking.pop()

    monkeypatch.setattr(Task, "check", check)
    monkeypatch.setattr(
        Task,
        "load",
        lambda self, split, labelled=None: (
            (loaded.append(split) if not checking else None) or real_load(self, split, labelled)
        ),
    )
    params = load_params(
        write_params(
            tmp_path / "params.yaml",
            task="toy",
            method="s3",
            generate={"min_words": 3},
            train={"model": str(tiny_student), "epochs": 1, "batch_size": 8, "min_steps": 0},
            s3={"seed_per_label": 6, "n_rationales": 3, "max_extrapolations": 5},
        )
    )
    task = str(toy_task)
    s3.seed(params, task, "s/round_0", "m/s3_0.json")
    seed_rows = read_jsonl("s/round_0/data.jsonl")
    assert 0 < len(seed_rows) <= 12
    extrapolated_from = []
    real_requests = s3.extrapolation_requests
    monkeypatch.setattr(
        s3,
        "extrapolation_requests",
        lambda spec, errors, *a: extrapolated_from.extend(errors) or real_requests(spec, errors, *a),
    )
    trained_on = []

    class EveryOtherWrong:  # a student wrong on the 1st, 3rd, ... mined row: its errors are known in advance
        def correct(self, rows):
            return [i % 2 == 1 for i in range(len(rows))]

    monkeypatch.setattr(
        "distill.students.train_student", lambda rows, *a, **kw: trained_on.append(rows) or (EveryOtherWrong(), [])
    )
    s3.round_(params, task, 1, "s/round_0", "s/round_1", "m/s3_1.json")
    m = json.loads((tmp_path / "m/s3_1.json").read_text())
    mined, _ = s3.error_split(read_jsonl(toy_task / "validation.jsonl"), ["text"], params.s3.error_fraction)
    assert m["val_rows"] == len(mined) and 4 <= len(mined) < 20  # only the mined part of validation.jsonl is used
    assert trained_on == [seed_rows]  # the round's student learns from everything so far
    assert m["val_accuracy"] == pytest.approx((len(mined) // 2) / len(mined))
    expected = mined[0::2][:5]  # the student's errors, in order, cut to max_extrapolations
    assert [r["text"] for r in extrapolated_from] == [r["text"] for r in expected]
    assert m["errors"] == m["requested"] == len(expected) and m["added"] > 0
    data = read_jsonl("s/round_1/data.jsonl")
    assert len(data) == len(seed_rows) + m["added"]
    assert "test" not in loaded  # the test set is only for the evaluate stage
    gold_texts = {r["text"] for r in read_jsonl(toy_task / "validation.jsonl")}
    assert not gold_texts & {r["text"] for r in data}  # gold examples are extrapolated from, never trained on
    assert all(r["source"] == "llm_extrapolated" for r in data[len(seed_rows) :])


def test_s3_prompt_builders(toy_task):
    from distill.methods.s3.algorithm import extrapolation_requests, parse_rationales
    from distill.core.tasks import load_task

    assert parse_rationales("1. great acting\n2) a dull plot twist\n- x\n* great acting\n3. strong score", 5) == [
        "great acting",
        "a dull plot twist",
        "strong score",
    ]
    spec = load_task(toy_task).spec
    reqs = extrapolation_requests(spec, [{"text": "a clumsy film", "label": "positive"}], 1, '"', 0, "t")
    assert reqs[0]["label"] == "positive" and '"a clumsy film"' in reqs[0]["messages"][0][1]

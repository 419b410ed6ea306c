"""seq2seq tasks (SVAMP): the spec, prompts and answer reading (pure), the causal-LM student (tiny random Llama), and
every stage of zerogen / gold / labelled on a word-problem task with the fake LLM."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from conftest import REPO, make_toy_seq2seq, write_params
from distill.core.io import DistillError
from distill.prompting import seq2seq
from distill.core.tasks import TaskSpec, load_task

SVAMP = load_task(REPO / "data/tasks/svamp").spec
ROW = {"input": "Ann has 3 pens and buys 4 more . How many pens ?", "target": "7", "equation": "( 3 + 4 )"}


def test_spec_kinds_are_checked():
    assert SVAMP.seq2seq and SVAMP.label_names == [] and SVAMP.target.check == "numeric"
    with pytest.raises(ValueError, match="needs a target"):
        TaskSpec(kind="seq2seq", instruction="x", fields=[{"name": "input", "display": "P", "description": "d"}])
    with pytest.raises(ValueError, match="at least 2 labels"):
        TaskSpec(kind="single", instruction="x", fields=[{"name": "text", "display": "T", "description": "d"}])


def test_inferred_and_checked_seq2seq_folder(tmp_path):
    root = make_toy_seq2seq(tmp_path)
    (root / "task.yaml").unlink()
    spec = load_task(root, quiet=True).spec
    assert spec.seq2seq and spec.target.equation == "equation" and spec.target.check == "numeric"
    assert load_task(root).check()["test"] == 12
    lines = (root / "test.jsonl").read_text().splitlines()
    lines[1] = json.dumps({"input": "no answer here"})
    (root / "test.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(DistillError, match=r"test.jsonl:2: missing or empty field 'target'"):
        load_task(root, quiet=True).check()


def test_written_forms_and_answers():
    assert seq2seq.example_block(SVAMP, ROW) == f"Problem: {ROW['input']}\nEquation: ( 3 + 4 )\nAnswer: 7"
    # the equation's value wins over the written answer; a bad equation falls back to the answer line
    assert seq2seq.answer_of(SVAMP, "Equation: ( 3 + 4 )\nAnswer: 8") == "7"
    assert seq2seq.answer_of(SVAMP, "Equation: three plus four\nAnswer: 7.0 pens") == "7"
    assert seq2seq.answer_of(SVAMP, "Equation: 12 / 4\n\nProblem: next one 99") == "3"  # cut at the next example
    assert seq2seq.answer_of(SVAMP, "Answer: 5\nProblem: 99 more") == "5"
    assert seq2seq.answer_of(SVAMP, "no idea") == ""
    assert seq2seq.is_correct(SVAMP, "7", "7.0") and not seq2seq.is_correct(SVAMP, "", "7")
    exact = SVAMP.model_copy(update={"target": SVAMP.target.model_copy(update={"check": "exact", "equation": None})})
    assert seq2seq.answer_of(exact, "Answer:  Paris \nmore") == "Paris" and seq2seq.is_correct(exact, "paris", "Paris")


def test_generated_examples_are_parsed_and_checked():
    ok, why = seq2seq.parse_generated(
        SVAMP, " Ann has 3 pens and buys 4 more. How many?\nEquation: 3 x 4\nAnswer: 12\n\nProblem: x"
    )
    assert why == "ok" and ok == {
        "input": "Ann has 3 pens and buys 4 more. How many?",
        "equation": "3 * 4",
        "target": "12",
    }
    assert (
        seq2seq.parse_generated(SVAMP, " Ann has 3 pens and 4 more?\nEquation: 3 + 4\nAnswer: 8")[1]
        == "answer_disagrees_with_equation"
    )
    assert (
        seq2seq.parse_generated(SVAMP, " Ann has 3 pens and 4 more?\nEquation: __import__('os')\nAnswer: 8")[1]
        == "equation_not_arithmetic"
    )
    reqs = seq2seq.build_requests(
        SVAMP,
        6,
        [ROW, {**ROW, "input": "other"}],
        2,
        0,
        "t",
        feedback=[{**ROW, "input": "fb"}],
        feedback_ratio=1.0,
        block="val",
        extra=seq2seq.VAL_INSTRUCTION,
    )
    assert len(reqs) == 6 and len({r["id"] for r in reqs}) == 6 and all(r["block"] == "val" for r in reqs)
    text = reqs[0]["messages"][0][1]
    assert "Problem: fb" in text and seq2seq.VAL_INSTRUCTION in text and reqs[0]["prefix"] == "Problem:"
    assert reqs == seq2seq.build_requests(
        SVAMP,
        6,
        [ROW, {**ROW, "input": "other"}],
        2,
        0,
        "t",
        feedback=[{**ROW, "input": "fb"}],
        feedback_ratio=1.0,
        block="val",
        extra=seq2seq.VAL_INSTRUCTION,
    )


@pytest.fixture(scope="module")
def tiny_generator(tiny_llm):
    from distill.students.generator import new_generator

    return new_generator(tiny_llm, SVAMP, seed=0, max_length=64)


def test_generator_learns_only_the_written_part(tiny_generator):
    batch = tiny_generator.encode([ROW, {**ROW, "input": "short?"}])
    labels = batch["labels"]
    tok = tiny_generator.tokenizer
    written = tok.decode(labels[0][labels[0] != -100])
    assert written.startswith("Equation: ( 3 + 4 )\nAnswer: 7") and "Problem" not in written
    assert (labels[1] != -100).sum() == (labels[0] != -100).sum()  # same answer, same written tokens
    per_row = tiny_generator(batch)
    assert per_row.shape == (2,) and torch.isfinite(per_row).all()


def test_token_energy_includes_or_masks_padding(tiny_generator):
    short, long_ = ROW, {**ROW, "equation": "( ( 3 + 4 ) * 10 - 2 ) / 4", "target": "17"}
    alone = tiny_generator.energies([short], include_pad=False)[0]
    masked = tiny_generator.energies([short, long_], include_pad=False)
    padded = tiny_generator.energies([short, long_], include_pad=True)
    assert masked[0] == pytest.approx(alone, abs=1e-4)  # masking: a row's energy does not depend on its batch
    assert padded[0] != pytest.approx(masked[0], abs=1e-4)  # included: the padding after the short answer counts
    assert padded[1] == pytest.approx(masked[1], abs=1e-4)  # the longest row has no padding


def test_generator_trains_saves_and_loads(tiny_llm, tmp_path):
    from distill.config import TrainParams
    from distill.kinds import SEQ2SEQ, kind_of
    from distill.students.model import load_student

    assert kind_of(SVAMP) is SEQ2SEQ

    rows = [
        {**ROW, "input": f"Ann has {a} pens and buys {b} more ?", "target": str(a + b), "equation": f"( {a} + {b} )"}
        for a, b in [(3, 4), (10, 2), (5, 5), (7, 1)]
    ]
    # the causal LM's settings (train.lm_*), as every stage resolves them for a seq2seq task
    cfg = SEQ2SEQ.student_config(
        TrainParams(lm_model=str(tiny_llm), epochs=3, lm_batch_size=2, lm_lr=1e-3, lm_max_length=64)
    )
    assert (cfg.batch_size, cfg.lr) == (2, 1e-3)
    student, history = SEQ2SEQ.train(SVAMP, rows, cfg, 0, select_rows=rows[:2])
    assert (
        len(history) == 3 and history[-1]["train_loss"] < history[0]["train_loss"] and "select_accuracy" in history[0]
    )
    student.save_pretrained(tmp_path / "s")
    again = load_student(tmp_path / "s")
    assert again.generative and again.write(rows[:2]) == student.write(rows[:2])
    with pytest.raises(DistillError, match="seq2seq"):
        SEQ2SEQ.train(SVAMP, rows, cfg.model_copy(update={"recipe": "setfit"}), 0)


def test_seq2seq_stages_with_the_fake_llm(tmp_path, tiny_llm, fake_backend, monkeypatch):
    """zerogen then gold on a word-problem task: examples parsed and checked (disagreeing answers rejected), the
    causal-LM student trained, evaluated with the numeric checker against the teacher, registered with the
    transformers flavour."""
    import mlflow
    import yaml

    from distill.config import Params
    from distill.stages import assemble, evaluate, register, train
    from distill.methods.zerogen import generate
    from distill.methods.gold import stages as gold
    from distill.methods.gold import start as gold_start
    from distill.methods.zerogen import prompts

    task = str(make_toy_seq2seq(tmp_path))
    monkeypatch.chdir(tmp_path)
    for method in ("zerogen", "gold"):
        params = Params.model_validate(
            yaml.safe_load(
                write_params(
                    tmp_path / "params.yaml",
                    task="sums",
                    method=method,
                    generate={"n_per_label": 10},
                    train={"lm_model": str(tiny_llm), "epochs": 1, "lm_batch_size": 4, "lm_max_length": 64},
                    gold={
                        "iterations": [{"i": 1, "prev": 0}],
                        "train_per_iter": 6,
                        "val_per_iter": 4,
                        "refresh_epochs": 1,
                    },
                    evaluate={"teacher_max_examples": 6},
                ).read_text()
            )
        )
        prompts.run(params, task, "w/prompts.jsonl")
        generate.run(params, task, "w/prompts.jsonl", "w/generated.jsonl", "m/generate.json")
        gold_start.run("g/iter_0")
        gold.iterate(params, task, 1, "g/iter_0", "g/iter_1", "m/g1.json")
        assemble.run(
            params,
            task,
            {"zerogen": "w/generated.jsonl", "gold": "g", "llkd": "w/pseudo.jsonl", "s3": "s"},
            "w/train.jsonl",
            "m/data.json",
            "p.tsv",
        )
        train.run(params, task, "w/train.jsonl", "models/student", "m/train.json")
        evaluate.run(params, task, "models/student", "m/metrics.json", "p/confusion.json")
        metrics = json.loads((tmp_path / "m/metrics.json").read_text())
        assert metrics["teacher_accuracy"] == 1.0 and metrics["teacher_n_test"] == 6  # the fake teacher adds correctly
        assert 0.0 <= metrics["student_accuracy"] <= 1.0 and "val_student_accuracy" in metrics
        rows = [json.loads(l) for l in (tmp_path / "w/train.jsonl").read_text().splitlines()]
        generated = [r for r in rows if r["source"] != "fewshot"]
        assert generated and all(str(eval(r["equation"])) == r["target"] for r in generated)  # noqa: S307 (test data)
        assert sum(r["source"] == "fewshot" for r in rows) == 4
        if method == "zerogen":
            m = json.loads((tmp_path / "m/generate.json").read_text())
            assert m["kept"] + sum(v for k, v in m.items() if k.startswith("rejected.")) == 10
            assert m.get("rejected.answer_disagrees_with_equation", 0) >= 1
        else:
            g1 = json.loads((tmp_path / "m/g1.json").read_text())
            assert g1["feedback"] >= 1 and "energy_mean" in g1
            fb = json.loads((tmp_path / "g/iter_1/feedback.json").read_text())
            assert {"input", "target", "equation", "energy"} <= set(fb[0])
    register.run(params, "w/train.jsonl", "models/student", ["m/metrics.json"], "w/registered.json")
    out = json.loads((tmp_path / "w/registered.json").read_text())
    assert out["model_name"] == "distill-sums" and out["alias"] == "champion"
    loaded = mlflow.transformers.load_model("models:/distill-sums@champion", return_type="components")
    assert type(loaded["model"]).__name__ == "LlamaForCausalLM"
    written = mlflow.pyfunc.load_model("models:/distill-sums@champion").predict(["Ann has 3 pens and buys 4 more ?"])
    assert len(written) == 1 and isinstance(written[0], str)  # the pyfunc writes for a bare problem (template logged)


def test_llkd_pseudo_solves_with_votes_and_selects_online(tmp_path, tiny_llm, fake_backend, monkeypatch):
    """LLKD on a seq2seq task: the teacher solves each unlabelled problem 4 times (sampled), the majority answer's
    solution is the pseudo-target and its vote share the confidence; training selects rows online on the student's
    per-row token NLL."""
    import yaml

    from distill.config import Params
    from distill.stages import assemble, train
    from distill.methods.llkd import stages as llkd

    task = str(make_toy_seq2seq(tmp_path))
    monkeypatch.chdir(tmp_path)
    params = Params.model_validate(
        yaml.safe_load(
            write_params(
                tmp_path / "params.yaml",
                task="sums",
                method="llkd",
                llkd={"pool_size": 8, "votes": 4},
                train={"lm_model": str(tiny_llm), "epochs": 2, "lm_batch_size": 4, "lm_max_length": 64},
            ).read_text()
        )
    )
    llkd.run(params, task, "w/pseudo.jsonl", "m/llkd.json")
    m = json.loads((tmp_path / "m/llkd.json").read_text())
    assert m["pool"] == 8 and m["pseudo_labelled"] == 8 and m["unanswered"] == 0 and fake_backend.calls == 32
    rows = [json.loads(l) for l in (tmp_path / "w/pseudo.jsonl").read_text().splitlines()]
    confidences = {r["meta"]["confidence"] for r in rows}
    assert confidences <= {0.5, 0.75, 1.0} and len(confidences) > 1  # the fake errs in a third of its samples
    for r in rows:
        a, b = (int(x) for x in re.findall(r"\d+", r["input"])[:2])
        assert str(eval(r["equation"])) == r["target"]  # noqa: S307 (test data)
        assert r["target"] in (str(a + b), str(a + b + 1))  # the fake's two answers; the majority holds >= 2 of 4 votes
    assemble.run(
        params,
        task,
        {"zerogen": "w/generated.jsonl", "gold": "g", "llkd": "w/pseudo.jsonl", "s3": "s"},
        "w/train.jsonl",
        "m/data.json",
        "p.tsv",
    )
    train.run(params, task, "w/train.jsonl", "models/student", "m/train.json")
    history = json.loads((tmp_path / "m/train.json").read_text())
    assert 0 < history["selected_fraction"] <= 1 and "tau_teacher.0" in history, history


def test_vote_picks_the_majority_answer_and_its_share():
    texts = ["Equation: 2 + 3\nAnswer: 5", "Equation: 2 * 3\nAnswer: 6", "Equation: 1 + 4\nAnswer: 5.0", "no answer"]
    solution, confidence = seq2seq.vote(SVAMP, texts)
    assert solution == {"equation": "2 + 3", "target": "5"} and confidence == 0.5  # 5 and 5.0 are one answer
    assert seq2seq.vote(SVAMP, ["nothing", "Equation: 1 / 0\nAnswer:"]) == (None, 0.0)
    assert seq2seq.read_solution(SVAMP, "Equation: 3 x 4\nAnswer: 12.0") == {"equation": "3 * 4", "target": "12"}
    assert seq2seq.read_solution(SVAMP, "Equation: 3 x 4") == {"equation": "3 * 4", "target": "12"}
    assert seq2seq.read_solution(SVAMP, "Equation: 3 x 4\nAnswer: 99") is None  # disagrees with its own equation


def test_s3_extrapolates_worked_problems_from_the_students_errors(tmp_path, tiny_llm, fake_backend, monkeypatch):
    """S3 on a seq2seq task: worked seed examples, then one similar-problem request per validation error (the wrong
    problem is the prompt's last demo), kept only if it checks; validation problems never enter the data."""
    import yaml

    from distill.config import Params
    from distill.methods.s3 import stages as s3

    task = str(make_toy_seq2seq(tmp_path))
    monkeypatch.chdir(tmp_path)
    params = Params.model_validate(
        yaml.safe_load(
            write_params(
                tmp_path / "params.yaml",
                task="sums",
                method="s3",
                train={"lm_model": str(tiny_llm), "epochs": 1, "lm_max_length": 64},
                s3={
                    "rounds": [{"i": 1, "prev": 0}],
                    "seed_per_label": 6,
                    "max_extrapolations": 5,
                    "error_fraction": 0.9,
                },
            ).read_text()
        )
    )
    s3.seed(params, task, "s/round_0", "m/s0.json")
    seed = json.loads((tmp_path / "m/s0.json").read_text())
    assert seed["requested"] == 6 and 0 < seed["added"] <= 6
    s3.round_(params, task, 1, "s/round_0", "s/round_1", "m/s1.json")
    r1 = json.loads((tmp_path / "m/s1.json").read_text())
    # a random tiny LM solves nothing: every mined validation problem (s3.error_fraction of them) is an error
    assert r1["errors"] == r1["requested"] == min(5, r1["val_rows"]) > 0 and r1["val_accuracy"] == 0.0
    rows = [json.loads(l) for l in (tmp_path / "s/round_1/data.jsonl").read_text().splitlines()]
    added = [r for r in rows if r["source"] == "llm_extrapolated"]
    assert len(rows) == seed["added"] + r1["added"] and len(added) == r1["added"] > 0
    validation = {json.loads(l)["input"] for l in (Path(task) / "validation.jsonl").read_text().splitlines()}
    assert not validation & {r["input"] for r in rows}
    requests = seq2seq.extrapolation_requests(SVAMP, [ROW], [{**ROW, "input": "demo"}], 1, 1, 0)
    text = requests[0]["messages"][0][1]
    assert text.index("Problem: demo") < text.index(f"Problem: {ROW['input']}") and seq2seq.SIMILAR in text

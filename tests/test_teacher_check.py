"""The teacher check's statistics and rule (metrics.py, methods/auto.teacher_verdict): pure functions."""

from __future__ import annotations

import json
import random

import pytest

from distill.methods.auto import teacher_verdict
from distill.core.metrics import balanced_accuracy, chance_p_value, worse_p_value


def test_balanced_accuracy_gives_a_constant_guess_one_over_k_whatever_the_label_mix():
    gold = ["a"] * 90 + ["b"] * 10
    assert balanced_accuracy(gold, ["a"] * 100) == 0.5  # accuracy would say 0.9
    assert balanced_accuracy(gold, gold) == 1.0
    assert balanced_accuracy(["a", "b", "c"], ["a", "a", "a"]) == pytest.approx(1 / 3)


def test_chance_p_value_is_small_for_informative_labels_and_large_for_noise():
    rng = random.Random(0)
    gold = [rng.choice("abcd") for _ in range(200)]
    noisy = [g if rng.random() < 0.5 else rng.choice("abcd") for g in gold]  # ~62% right, 4 labels
    assert chance_p_value(gold, noisy) < 0.01
    assert chance_p_value(gold, [rng.choice("abcd") for _ in gold]) > 0.05
    assert chance_p_value(gold, ["a"] * 200) == 1.0  # a constant labeller is chance by construction
    # deterministic for a seed: the rule decides the same way on every rerun
    assert chance_p_value(gold, noisy, seed=3) == chance_p_value(gold, noisy, seed=3)


def test_worse_p_value_is_the_exact_sign_test_on_rows_where_only_one_is_right():
    gold = ["a"] * 10
    # a right on 1 row where b is wrong, b right on 9 where a is wrong: P(X <= 1), X ~ Bin(10, 1/2) = 11/1024
    a = ["a"] + ["b"] * 9
    b = ["b"] + ["a"] * 9
    assert worse_p_value(gold, a, b) == pytest.approx(11 / 1024)
    assert worse_p_value(gold, b, a) == pytest.approx(1 - 1 / 1024)
    assert worse_p_value(gold, gold, gold) == 1.0  # never differing: no evidence either way


def test_the_teacher_is_kept_unless_it_is_at_chance_or_its_labeller_loses_to_the_reference():
    rng = random.Random(1)
    gold = [rng.choice("ab") for _ in range(200)]
    good = [g if rng.random() < 0.7 else rng.choice("ab") for g in gold]  # ~85% right
    level = [g if rng.random() < 0.7 else rng.choice("ab") for g in gold]
    noise = [rng.choice("ab") for _ in gold]
    kept = teacher_verdict(gold, good, good, level)
    assert kept["teacher_adds"] and kept["reason"] == ""
    # level with the reference is not "adds nothing": the pool it labels can still teach the student more
    assert teacher_verdict(gold, good, level, good)["teacher_adds"]
    at_chance = teacher_verdict(gold, noise, good, good)
    assert not at_chance["teacher_adds"] and "at chance" in at_chance["reason"]
    worse = teacher_verdict(gold, good, noise, good)
    assert not worse["teacher_adds"] and "worse than the fewshot labels alone" in worse["reason"]
    assert teacher_verdict(gold, good, good, None)["labeller_worse_p"] == 1.0  # nothing to compare with
    # too few rows to tell a teacher from chance: it is kept (a perfect one on 8 rows has p = 1/70 at best)
    assert teacher_verdict(gold[:40], noise[:40], good[:40], good[:40])["teacher_adds"]


def test_auto_falls_back_to_the_fewshot_reference_where_the_teacher_adds_nothing(
    tmp_path, toy_task, fake_backend, tiny_student, monkeypatch
):
    """The teacher_check stage writes its verdict for `method: auto`; resolve reads it: a teacher at chance makes
    auto `labelled` on fewshot.jsonl with SetFit, a good one keeps the auto rule's method; a verdict written for other
    params, or for a method set by hand, changes nothing."""
    from conftest import write_params
    from distill.config import load_params
    from distill.methods.auto import CHECK, resolve
    from distill.stages import teacher_check

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("distill.methods.auto.MIN_ROWS", 10)  # the toy task has 20 validation rows
    common = dict(train={"model": str(tiny_student)}, llkd={"prior_model": "student", "fewshot_prior": "none"})
    params = load_params(write_params(tmp_path / "auto.yaml", task="toy", **common))
    assert params.method == "auto"

    teacher_check.run(params, str(toy_task), str(CHECK))  # the fake teacher reads the sentiment words: right
    good = json.loads(CHECK.read_text())
    assert good["checked"] and good["teacher_adds"] and good["method"] == "llkd" and good["teacher_accuracy"] == 1.0
    assert resolve(params, toy_task).method == "llkd"

    right = fake_backend.score  # now a teacher that answers at random, whatever the row says
    rng = random.Random(0)
    monkeypatch.setattr(fake_backend, "score", lambda requests: [rng.sample(s, len(s)) for s in right(requests)])
    monkeypatch.setenv("DISTILL_LLM_CACHE", str(tmp_path / "other-llm.sqlite"))  # not the answers cached above
    teacher_check.run(params, str(toy_task), str(CHECK))
    bad = json.loads(CHECK.read_text())
    assert bad["checked"] and not bad["teacher_adds"] and "at chance" in bad["reason"]
    fallback = resolve(params, toy_task)
    assert fallback.method == "labelled" and fallback.labelled.splits == ["fewshot"]
    assert fallback.train.recipe == "setfit"  # one text per row: SetFit can train it

    # the verdict belongs to its params: another seed, or a method set by hand, does not read it
    assert resolve(params.model_copy(update={"seed": 1}), toy_task).method == "llkd"
    assert resolve(params.model_copy(update={"method": "zerogen"}), toy_task).method == "zerogen"
    calls = fake_backend.calls
    teacher_check.run(params.model_copy(update={"method": "zerogen"}), str(toy_task), str(CHECK))
    assert fake_backend.calls == calls and json.loads(CHECK.read_text())["checked"] is False  # no teacher call


def test_the_docs_block_is_rendered_from_the_rows():
    """Every cell of docs/benchmarks.md's `teacher_check` block comes from benchmarks/results/teacher_check.jsonl."""
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(repo / "benchmarks"))
    import teacher_check

    rows = [json.loads(line) for line in teacher_check.RESULTS.read_text().splitlines() if line.strip()]
    text = (repo / "docs" / "benchmarks.md").read_text()
    begin, end = "<!-- teacher_check:begin -->\n", "\n<!-- teacher_check:end -->"
    assert teacher_check.render(rows) == text[text.index(begin) + len(begin) : text.index(end)]


def test_summary_says_why_auto_chose_the_fewshot_reference(tmp_path):
    from click.testing import CliRunner

    from distill.cli import cli

    metrics = {"student_accuracy": 0.55, "student_macro_f1": 0.5, "n_test": 40, "teacher_n_test": 40}
    (tmp_path / "m.json").write_text(json.dumps({**metrics, "teacher_accuracy": 0.46}))
    reason = "the teacher's labels are at chance on validation (permutation p = 0.87)"
    (tmp_path / "check.json").write_text(json.dumps({"checked": True, "teacher_adds": False, "reason": reason}))
    args = ["summary", "--metrics", str(tmp_path / "m.json"), "--registered", str(tmp_path / "none.json")]
    out = CliRunner().invoke(cli, [*args, "--check", str(tmp_path / "check.json")]).output
    assert "method: auto chose the few-shot reference" in out and reason in out
    (tmp_path / "check.json").write_text(json.dumps({"checked": True, "teacher_adds": True, "reason": ""}))
    assert "few-shot reference" not in CliRunner().invoke(cli, [*args, "--check", str(tmp_path / "check.json")]).output


def test_the_verdicts_key_covers_exactly_what_dvc_reruns_the_check_on():
    """methods/auto.CHECK_PARAMS (a verdict written for other values is not read) and the teacher_check stage's params
    in dvc.yaml (DVC re-runs the check when one changes) are two lists of one thing: a key missing from either would
    read a stale verdict or ignore a current one. `task` is in the key only: DVC sees it in the stage's command."""
    from pathlib import Path

    import yaml

    from distill.methods.auto import CHECK_PARAMS

    stage = yaml.safe_load((Path(__file__).resolve().parents[1] / "dvc.yaml").read_text())["stages"]["teacher_check"]
    assert set(CHECK_PARAMS) == set(stage["params"]) | {"task"}
    assert "${task}" in stage["cmd"]


def test_the_check_says_why_it_does_not_apply(toy_task):
    from distill.stages.teacher_check import unchecked_because
    from distill.core.tasks import load_task

    task = load_task(toy_task, quiet=True)
    validation, fewshot = task.load("validation"), task.load("fewshot")
    assert unchecked_because(task.spec, validation, fewshot) == ""
    assert "no validation.jsonl rows" in unchecked_because(task.spec, [], fewshot)
    only_one = [r for r in fewshot if r["label"] == "positive"]
    assert "no row labelled 'negative'" in unchecked_because(task.spec, validation, only_one)

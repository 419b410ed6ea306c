"""`pool_random`, the worked example of a method added in its own folder (docs/architecture.md): the teacher's labels
on a seeded random subset of the unlabelled pool, through the shared stages."""

from __future__ import annotations

import pytest

from conftest import write_params
from distill.config import load_params
from distill.core.io import DistillError, read_jsonl


def test_the_teacher_labels_a_random_subset_and_the_shared_stages_train_on_it(
    tmp_path, toy_task, fake_backend, tiny_student, monkeypatch
):
    from distill.methods.pool_random import stage
    from distill.stages import assemble, train

    monkeypatch.chdir(tmp_path)
    params = load_params(
        write_params(
            tmp_path / "params.yaml",
            task="toy",
            method="pool_random",
            pool_random={"size": 10},
            train={"model": str(tiny_student), "epochs": 1, "batch_size": 8, "min_steps": 0},
        )
    )
    task = str(toy_task)
    stage.run(params, task, "w/pool.jsonl", "m/pool.json")
    rows = read_jsonl("w/pool.jsonl")
    pool = {r["text"] for r in read_jsonl(toy_task / "unlabeled.jsonl")}
    assert len(rows) == 10 == fake_backend.calls and {r["text"] for r in rows} <= pool
    for r in rows:  # the teacher's label and distribution, kept as the soft target
        probs = r["meta"]["teacher_probs"]
        assert r["label"] == max(probs, key=probs.get) and r["source"] == "pseudo"
    stage.run(params, task, "w/again.jsonl", "m/again.json")  # seeded: the same subset
    assert read_jsonl("w/again.jsonl") == rows

    assemble.run(params, task, {"pool_random": "w/pool.jsonl"}, "w/train.jsonl", "m/data.json", "plots/it.tsv")
    assert len(read_jsonl("w/train.jsonl")) == 10 + 8  # + the real fewshot rows, as for every method
    train.run(params, task, "w/train.jsonl", "models/student", "m/train.json")
    assert (tmp_path / "models/student/distill.json").is_file()


def test_under_another_method_it_is_skipped_and_a_seq2seq_task_is_refused(
    tmp_path, toy_task, fake_backend, monkeypatch
):
    import conftest
    from distill.methods.pool_random import stage

    monkeypatch.chdir(tmp_path)
    other = load_params(write_params(tmp_path / "a.yaml", task="toy", method="zerogen"))
    stage.run(other, str(toy_task), "w/pool.jsonl", "m/pool.json")
    assert read_jsonl("w/pool.jsonl") == [] and fake_backend.calls == 0
    sums = conftest.make_toy_seq2seq(tmp_path)
    mine = load_params(write_params(tmp_path / "b.yaml", task="sums", method="pool_random"))
    with pytest.raises(DistillError, match="pool_random: task sums is seq2seq"):
        stage.run(mine, str(sums), "w/s.jsonl", "m/s.json")

"""Test rows never reach training unnoticed: check_task reports split rows that repeat a test row and repeated ids;
assemble drops generated and pseudo-labelled copies of test rows."""

from __future__ import annotations

import json

from conftest import write_jsonl, write_params
from distill.config import Params, load_params
from distill.core.io import read_jsonl
from distill.core.leakage import drop_test_rows, duplicate_ids, overlap_counts, split_report, text_key, warnings
from distill.core.tasks import load_task


def test_text_key_ignores_case_width_and_all_whitespace():
    assert text_key(["text"], {"text": "Great  film ."}) == text_key(["text"], {"text": "great film.\n"})
    assert text_key(["text"], {"text": "it 's ＧＯＯＤ"}) == text_key(["text"], {"text": "It's good"})  # NFKC width
    assert text_key(["text"], {"text": "great film"}) != text_key(["text"], {"text": "great films"})
    pair = ["text_a", "text_b"]  # a pair is the same example only when both texts match
    assert text_key(pair, {"text_a": "A", "text_b": "B"}) != text_key(pair, {"text_a": "A", "text_b": "C"})


def test_duplicate_ids_counts_repeats_within_a_split():
    assert duplicate_ids([{"id": "a"}, {"id": "b"}, {"id": "a"}, {"id": "a"}]) == 2
    assert duplicate_ids([{"id": 1}, {"id": "1"}, {"id": [1]}, {"id": [1]}]) == 1  # 1 and "1" differ; a list is hashed


def test_overlap_and_warnings_name_each_split(toy_task):
    spec = load_task(toy_task).spec
    test = [{"text": "A fine film", "label": "positive"}]
    splits = {"test": test, "validation": [{"text": "a  FINE film"}], "fewshot": [{"text": "other"}], "unlabeled": []}
    assert overlap_counts(spec, splits) == {"validation": 1, "fewshot": 0, "unlabeled": 0}
    report = split_report(spec, splits)
    assert report["overlap.validation"] == 1 and report["duplicate_ids.test"] == 0
    assert warnings(report) == [
        "1 validation row(s) repeat a test.jsonl row (case and whitespace ignored): test "
        "scores can be inflated; assemble drops such rows from the training set"
    ]
    assert warnings({k: 0 for k in report}) == []
    kept, dropped = drop_test_rows(spec, [{"text": "A FINE  film"}, {"text": "new"}], test)
    assert kept == [{"text": "new"}] and dropped == 1


def test_check_task_warns_and_counts_overlap_and_duplicate_ids(tmp_path, toy_task, capsys):
    """A fewshot row that is a test row in other case and spacing, and a validation id used twice: a warning on
    stderr and counts in metrics/task.json; the stage still writes its outputs (a warning, not an error)."""
    from distill.stages import check_task

    test = read_jsonl(toy_task / "test.jsonl")
    fewshot = read_jsonl(toy_task / "fewshot.jsonl")
    fewshot[0]["text"] = "  " + test[5]["text"].upper().replace(" ", "   ") + " "
    write_jsonl(toy_task / "fewshot.jsonl", [{k: v for k, v in r.items() if k != "_line"} for r in fewshot])
    validation = read_jsonl(toy_task / "validation.jsonl")
    write_jsonl(
        toy_task / "validation.jsonl",
        [
            {"id": "v1" if i < 3 else f"v{i}", **{k: v for k, v in r.items() if k != "_line"}}
            for i, r in enumerate(validation)
        ],
    )
    before = split_report(load_task(toy_task).spec, load_task(toy_task).load_all())["overlap.validation"]
    check_task.run(Params(), str(toy_task), str(tmp_path / "w/task.yaml"), str(tmp_path / "m/task.json"))
    m = json.loads((tmp_path / "m/task.json").read_text())
    assert m["overlap.fewshot"] == 1 and m["duplicate_ids.validation"] == 2 and m["duplicate_ids.test"] == 0
    assert m["overlap.validation"] == before and m["rows.fewshot"] == 8 and (tmp_path / "w/task.yaml").is_file()
    err = capsys.readouterr().err
    assert "check_task: warning:" in err and "1 fewshot" in err and "repeat a test.jsonl row" in err
    assert "repeated row ids (2 in validation.jsonl)" in err


def test_assemble_drops_generated_copies_of_test_rows(tmp_path, toy_task, monkeypatch, capsys):
    from distill.stages import assemble

    monkeypatch.chdir(tmp_path)
    test = read_jsonl(toy_task / "test.jsonl")
    probs = {"negative": 0.0, "positive": 1.0}

    def generated(i, text):
        return {
            "id": f"g{i}",
            "text": text,
            "label": "positive",
            "source": "llm",
            "round": 0,
            "meta": {"teacher_probs": probs, "confidence": 1.0},
        }

    copy = test[3]["text"].title()  # a test row, as a teacher might write it out
    write_jsonl(tmp_path / "generated.jsonl", [generated(0, "a new review"), generated(1, copy), generated(2, "new")])
    params = load_params(write_params(tmp_path / "params.yaml", task="toy", method="zerogen"))
    assemble.run(
        params,
        str(toy_task),
        {"zerogen": "generated.jsonl", "gold": "g", "llkd": "p", "s3": "s"},
        "w/train.jsonl",
        "m/data.json",
        "it.tsv",
    )
    rows = read_jsonl("w/train.jsonl")
    assert [r["id"] for r in rows if r["source"] == "llm"] == ["g0", "g2"]  # the test row's copy is gone
    m = json.loads((tmp_path / "m/data.json").read_text())
    assert m["dropped_test_overlap"] == 1 and m["n_samples"] == len(rows) == 2 + 8
    assert "1 as copies of test rows" in capsys.readouterr().out

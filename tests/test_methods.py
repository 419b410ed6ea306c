"""The pure algorithm modules: ZeroGen prompts and cut rules, few-shot prompts, metrics."""

import math

import pytest

from distill.prompting.fewshot import format_example, label_probs, pick_demos, score_requests, scoring_prefix
from distill.prompting.generation import build_requests, cut, filter_samples
from distill.core.metrics import accuracy, macro_f1
from distill.core.tasks import load_task


@pytest.mark.parametrize(
    "raw,want",
    [
        ('"great fun." she said', "great fun."),  # open quote from the prefix: up to the closing quote
        ("great fun\nmore text", "great fun"),  # no quote: up to the first newline
        ("one. two. three and no end", "one. two."),  # else up to the last full stop
        ("no stop here", None),  # else dropped
        ('  "  spaced   out  " tail', "spaced out"),
    ],
)
def test_cut_rules(raw, want):
    assert cut(raw) == want


def sample(raw, label="positive", **extra):
    return {"id": raw, "label": label, "meta": {"raw": raw}, **extra}


def test_filter_counts_every_reason():
    samples = [
        sample('a fine film indeed."'),
        sample('A fine film, indeed!"'),
        sample('too short"'),
        sample("no end at all"),
        sample(" ".join(["word"] * 30) + '"'),
    ]
    kept, rejected = filter_samples(samples, "text", min_words=3, max_words=20)
    assert [k["text"] for k in kept] == ["a fine film indeed."]
    assert rejected == {
        "no_text": 1,
        "too_short": 1,
        "too_long": 1,
        "not_question": 0,
        "copies_demo": 0,
        "duplicate": 1,
        "copies_context": 0,
    }


def test_filter_drops_copies_of_shown_demos_and_non_questions():
    demos = ["What is the capital of France?"]
    samples = [
        sample('what is the capital of france ?"', demos=demos),
        sample('Who wrote Hamlet and when?"', demos=demos),
        sample('Hamlet was written by Shakespeare."', demos=demos),
    ]
    kept, rejected = filter_samples(samples, "text", 3, 20, question=True)
    assert [k["text"] for k in kept] == ["Who wrote Hamlet and when?"]
    assert rejected["copies_demo"] == 1 and rejected["not_question"] == 1
    kept, _ = filter_samples(samples, "text", 3, 20)  # any form: the statement stays
    assert len(kept) == 2


def test_filter_pairs_drop_copies_of_context():
    samples = [
        sample('The cat sat on the mat."', text_a="the cat sat on the mat"),
        sample('A cat is sitting somewhere."', text_a="the cat sat on the mat"),
    ]
    kept, rejected = filter_samples(samples, "text_b", 3, 20, context_field="text_a")
    assert len(kept) == 1 and rejected["copies_context"] == 1


def test_requests_are_stable_and_label_conditioned(toy_task):
    spec = load_task(toy_task).spec
    a = build_requests(spec, 3, [], [], 0, '"', seed=0)
    b = build_requests(spec, 3, [], [], 0, '"', seed=0)
    assert a == b and len(a) == 6
    assert len({r["id"] for r in a}) == 6 and len({r["seed"] for r in a}) == 6
    assert all(r["label"] in r["messages"][0][1] for r in a)  # the label description names the label
    assert build_requests(spec, 3, [], [], 0, '"', seed=1)[0]["seed"] != a[0]["seed"]


def test_pair_requests_condition_on_real_contexts():
    from conftest import REPO

    spec = load_task(REPO / "data/tasks/rte").spec
    reqs = build_requests(spec, 2, [], ["Premise one here.", "Premise two here."], 0, '"', seed=0)
    assert len(reqs) == 4
    for r in reqs:
        assert r["context"] in r["messages"][0][1]


def test_fewshot_prompt_shape(toy_task):
    task = load_task(toy_task)
    spec, few = task.spec, task.load("fewshot")
    demos = pick_demos(spec, few, 2, seed=0)
    assert [d["label"] for d in demos] == ["negative", "positive", "negative", "positive"]
    prefix = scoring_prefix(spec, demos, 100)
    assert prefix.startswith(spec.instruction) and prefix.endswith("\n\n")
    assert prefix.count("Sentiment: negative") == 2
    req = score_requests(spec, [{"text": "so   good"}], prefix, 100)[0]
    assert req.text == "Review: so good\nSentiment:" and req.options == (" negative", " positive")
    assert format_example(spec, {"text": "x" * 50 + " tail"}, 20).endswith("...\nSentiment:")


def test_label_probs_normalise():
    p = label_probs([math.log(0.2), math.log(0.6)])
    assert p == pytest.approx([0.25, 0.75])
    assert sum(label_probs([-1000.0, -1001.0, -999.0])) == pytest.approx(1.0)


def test_metrics_by_hand():
    gold = ["a", "a", "b", "b"]
    pred = ["a", "b", "b", "b"]
    assert accuracy(gold, pred) == 0.75
    # F1(a) = 2*1/(2*1+0+1) = 2/3; F1(b) = 2*2/(2*2+1+0) = 4/5
    assert macro_f1(gold, pred, ["a", "b"]) == pytest.approx((2 / 3 + 4 / 5) / 2)


def test_batch_calibration_removes_a_label_prior():
    from distill.prompting.fewshot import batch_calibrate, teacher_probs

    # the teacher prefers label 1 everywhere, but less so on the first two rows
    probs = [[0.4, 0.6], [0.3, 0.7], [0.1, 0.9], [0.05, 0.95]]
    cal = batch_calibrate(probs)
    assert [max(range(2), key=p.__getitem__) for p in cal] == [0, 0, 1, 1]
    assert all(sum(p) == pytest.approx(1.0) for p in cal)
    assert batch_calibrate([[0.2, 0.8]]) == [pytest.approx([0.5, 0.5])]
    assert teacher_probs([[math.log(0.25), math.log(0.75)]], "none") == [pytest.approx([0.25, 0.75])]


def test_s3_error_split_is_a_stable_partition_by_content():
    from distill.methods.s3.algorithm import error_split

    rows = [
        {"text": f"review {i}", "label": "positive" if i % 2 else "negative", "id": f"validation-{i}"}
        for i in range(1000)
    ]
    mined, held = error_split(rows, ["text"], 0.5)
    assert len(mined) + len(held) == 1000 and not {r["text"] for r in mined} & {r["text"] for r in held}
    assert 440 <= len(mined) <= 560  # a hash, not a count: about the fraction asked
    moved = [{**r, "id": "x"} for r in reversed(rows)]  # other positions, other ids: the same sides
    assert sorted(r["text"] for r in error_split(moved, ["text"], 0.5)[0]) == sorted(r["text"] for r in mined)
    assert {r["text"] for r in error_split(rows, ["text"], 0.25)[0]} < {
        r["text"] for r in mined
    }  # nested as the fraction grows
    # pinned: sha256 of the JSON list of input fields, first 8 bytes / 2**64 < fraction. A change to the hashed bytes
    # would move rows between sides, and old runs' val_* would no longer be comparable with new ones.
    side = {r["text"]: (r in mined, r in error_split(rows, ["text"], 0.25)[0]) for r in rows[:4]}
    assert side["review 0"] == (True, True)  # 0.2014
    assert side["review 2"] == (True, False)  # 0.3462
    assert side["review 3"] == (False, False)  # 0.7451
    assert (len(mined), len(error_split(rows, ["text"], 0.25)[0])) == (479, 241)

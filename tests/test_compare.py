"""`distill compare`: the pure parts (names, parsing, DVC's JSON, failure lines, the table, the plot) and what the
SetFit reference is queued with. The queue rules against a fake `dvc` (resume, orphans, lost runs, hung calls):
test_compare_watch.py. On a real DVC queue: test_compare_queue.py (a stand-in pipeline) and test_e2e.py (the real
one)."""

import textwrap

import pytest

from conftest import REPO
from distill import compare as cmp
from distill import compare_queue
from distill import report
from distill.core.io import DistillError


def test_names_seeds_and_overrides():
    assert cmp.Combo("c1", "my task.v2", "gold", 3).name == "c1-my-task-v2-gold-s3"
    assert (
        cmp.parse_seeds("3") == [0, 1, 2] and cmp.parse_seeds("0,7,42") == [0, 7, 42] and cmp.parse_seeds("7,") == [7]
    )
    for bad in ("0", "x", "1,y"):
        with pytest.raises(DistillError, match="--seeds"):
            cmp.parse_seeds(bad)
    assert cmp.parse_overrides(["train.epochs=2", "teacher.api_key_env=", "llkd.selection=all"]) == {
        "train.epochs": 2,
        "teacher.api_key_env": None,
        "llkd.selection": "all",
    }
    with pytest.raises(DistillError, match="key=value"):
        cmp.parse_overrides(["train.epochs"])
    with pytest.raises(DistillError, match="set by compare"):
        cmp.parse_overrides(["seed=4"])
    assert cmp.parse_list("sst2, ag_news,sst2", "--tasks") == ["sst2", "ag_news"]


def test_bad_override_is_refused_before_anything_is_queued():
    combos = cmp.plan("c", ["sst2"], ["zerogen", "llkd"], [0])
    cmp.check_params(REPO / "params.yaml", {"train.epochs": 2}, combos)
    with pytest.raises(DistillError, match=r"train\.epochs"):
        cmp.check_params(REPO / "params.yaml", {"train.epochs": 0}, combos)
    with pytest.raises(DistillError, match="no section 'trian'"):
        cmp.check_params(REPO / "params.yaml", {"trian.epochs": 2}, combos)
    with pytest.raises(DistillError, match="trian"):
        cmp.check_params(REPO / "params.yaml", {"trian": 2}, combos)
    key = "sk-test-" + "CANARY1234567890abcdef"
    with pytest.raises(DistillError, match="not the key itself") as e:  # a pasted key: refused, never echoed
        cmp.check_params(REPO / "params.yaml", {"teacher.api_key_env": key, "seed": 3}, combos)
    assert key not in str(e.value) and "-S teacher.api_key_env, seed:" in str(e.value)


def test_experiments_from_dvc_exp_show_json():
    shown = [
        {"rev": "workspace", "experiments": None},
        {
            "rev": "abc",
            "experiments": [
                {
                    "revs": [
                        {
                            "name": "c-a-zerogen-s0",
                            "data": {
                                "params": {"params.yaml": {"data": {"seed": 0}}},
                                "metrics": {
                                    "metrics/metrics.json": {"data": {"student_accuracy": 0.8}},
                                    "metrics/x.json": {"error": {"type": "FileNotFoundError"}},
                                },
                            },
                        }
                    ],
                    "name": "c-a-zerogen-s0",
                    "executor": {"state": "success", "local": {"log": "/l/1.out"}},
                },
                {
                    "revs": [{"name": "c-b-zerogen-s0", "data": {}, "error": {"msg": "Experiment run failed"}}],
                    "name": "c-b-zerogen-s0",
                    "executor": None,
                },
                {
                    "revs": [{"name": "c-a-gold-s0", "data": None}],
                    "name": "c-a-gold-s0",
                    "executor": {"state": "queued"},
                },
            ],
        },
    ]
    got = cmp.experiments(shown)
    assert got["c-a-zerogen-s0"] == {
        "state": "success",
        "params": {"seed": 0},
        "log": "/l/1.out",
        "metrics": {"metrics/metrics.json": {"student_accuracy": 0.8}},
    }
    assert got["c-b-zerogen-s0"]["state"] == "failed" and got["c-a-gold-s0"]["state"] == "queued"


def test_failure_reason_names_the_stage_and_the_error():
    log = textwrap.dedent("""\
        Reproducing experiment 'c-bad-zerogen-s0'
        Running stage 'check_task':
        > distill check-task --task-dir data/tasks/bad
        error: data/tasks/bad/test.jsonl:2: not valid JSON (Expecting value)
        ERROR: failed to reproduce 'check_task': failed to run: distill check-task, exited with 2
        """)
    assert cmp.failure_reason(log) == "check_task: data/tasks/bad/test.jsonl:2: not valid JSON (Expecting value)"
    assert (
        cmp.failure_reason("ERROR: failed to reproduce 'train': exited with -9\n")
        == "failed to reproduce 'train': exited with -9"
    )
    assert cmp.failure_reason("") == "no log"


def test_table_plot_and_progress(tmp_path):
    runs = [
        {
            "name": f"c-t-{m}-s{s}",
            "task": "t",
            "method": m,
            "seed": s,
            "state": "success",
            "student_accuracy": 0.7 + 0.1 * s,
            "student_macro_f1": 0.6,
            "val_student_accuracy": 0.65,
            "teacher_accuracy": 0.75,
            "n_samples": 100,
            "llm_tokens": 5000,
            "wall_min": 2.0,
        }
        for m in ("zerogen", "gold")
        for s in (0, 1)
    ]
    runs.append(
        {
            "name": "c-u-zerogen-s0",
            "task": "u",
            "method": "zerogen",
            "seed": 0,
            "state": "failed",
            "error": "check_task: boom",
        }
    )
    md = report.markdown(
        "c",
        "distill compare --tasks t,u",
        runs,
        ["t", "u"],
        ["zerogen", "gold"],
        {"t": "models:/distill-t@champion = version 3"},
        cmp.SHOW_CMD,
    )
    assert "| t | zerogen | 2/2 | 0.750 ± 0.071 | 0.600 ± 0.000 |" in md
    assert "| u | zerogen | 0/1 | – |" in md and "| u | gold | 0/0 |" in md
    assert "`c-u-zerogen-s0` (u, zerogen, seed 0): check_task: boom" in md and "@champion = version 3" in md
    report.plot(tmp_path / "c.png", runs, ["t", "u"], ["zerogen", "gold"])
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    states = {"a": "success", "b": "failed", "c": "running", "d": "queued", "e": "queued"}
    assert report.progress(states, [], 2) == "2/5 done (1 failed), 1 running, 2 queued, ETA after the first run ends"
    assert report.progress(states, [600.0], 2).endswith("ETA ~12 min")
    assert report.progress({"a": "success"}, [60.0], 1) == "1/1 done (0 failed), 0 running, 0 queued"


def test_the_setfit_reference_is_planned_and_queued_with_its_own_recipe(monkeypatch, tmp_path):
    """`setfit` in --methods: the `labelled` method on fewshot.jsonl with the setfit recipe, whatever -S says about
    the recipe for the other methods; not planned for a pair task (SetFit embeds one text)."""
    assert cmp.setfit_unfit(REPO, ["sst2", "rte", "svamp"]) == ["rte", "svamp"]
    combos = cmp.plan("c", ["sst2", "rte"], ["llkd", "setfit"], [0, 1], no_setfit=["rte"])
    assert [(c.task, c.method) for c in combos] == [("sst2", "llkd")] * 2 + [("sst2", "setfit")] * 2 + [
        ("rte", "llkd")
    ] * 2
    assert combos[2].params() == {
        "task": "sst2",
        "method": "labelled",
        "seed": 0,
        "comparison": "c",
        "labelled.splits": ["fewshot"],
        "train.recipe": "setfit",
    }
    cmp.check_params(REPO / "params.yaml", {"train.recipe": "finetune"}, combos)  # both methods' params validate
    calls = []
    monkeypatch.setattr(compare_queue, "dvc", lambda root, *args, **kw: calls.append(args) or "[]")
    comparison = cmp.Comparison(
        REPO,
        "c",
        ["sst2"],
        ["llkd", "setfit"],
        [0],
        {"train.recipe": "finetune", "train.epochs": 2},
        1,
        tmp_path,
        "distill compare ...",
    )
    assert comparison.queue({"base": "HEAD", "timing": {}}) == 2
    queued = {a[a.index("-n") + 1]: [x for x in a if x != "-S"] for a in calls if a[:3] == ("exp", "run", "--queue")}
    assert queued["c-sst2-llkd-s0"] == [
        "exp",
        "run",
        "--queue",
        "-n",
        "c-sst2-llkd-s0",
        'train.recipe="finetune"',
        "train.epochs=2",
        "task=sst2",
        "method=llkd",
        "seed=0",
        "comparison=c",
    ]
    ref = queued["c-sst2-setfit-s0"]
    assert "train.recipe=setfit" in ref and 'labelled.splits=["fewshot"]' in ref and "method=labelled" in ref
    assert "train.epochs=2" in ref and not any(
        x.startswith('train.recipe="') for x in ref
    )  # -S reaches it, not its recipe

"""The tracking store from several processes at once, and from inside a DVC experiment's temporary copy."""

import subprocess
import sys

from distill.core.io import project_root

WRITER = """
import sys
from distill.tracking import log_iteration_run
for i in range(6):
    log_iteration_run("concurrent", f"{sys.argv[1]}-{i}", {"who": sys.argv[1]}, {"i": i}, {"pipeline": "test"}, {"a.txt": "x"})
"""


def test_two_processes_log_at_once_without_database_locked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, name], cwd=tmp_path, stderr=subprocess.PIPE, text=True)
        for name in ("a", "b", "c")
    ]
    errors = [p.communicate(timeout=600)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], "\n".join(e[-2000:] for e in errors)
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["concurrent"])
    assert len(runs) == 18 and sorted(runs["params.who"].value_counts().tolist()) == [6, 6, 6]


def test_project_root_sees_through_dvc_experiment_copies(tmp_path, monkeypatch):
    exp = tmp_path / "repo" / ".dvc" / "tmp" / "exps" / "tmpab12cd"
    exp.mkdir(parents=True)
    assert project_root(exp) == tmp_path / "repo"
    assert project_root(tmp_path / "repo") == tmp_path / "repo"
    from distill.teachers import cache_path
    from distill.tracking import tracking_uri

    monkeypatch.chdir(exp)  # where a queued experiment's stages run
    assert cache_path() == tmp_path / "repo" / ".cache" / "llm.sqlite"
    assert tracking_uri() == f"sqlite:///{tmp_path / 'repo' / 'mlflow.db'}"


# -- the registered student: signature, input example, input checks, model card ------------------------------------

METRICS = {
    "student_accuracy": 0.8412,
    "student_macro_f1": 0.8398,
    "student_accuracy_teacher_rows": 0.85,
    "teacher_accuracy": 0.7125,
    "teacher_macro_f1": 0.70,
    "labeller_accuracy": 0.7375,
    "labeller_macro_f1": 0.73,
    "val_student_accuracy": 0.83,
    "val_student_macro_f1": 0.82,
    "val_student_accuracy_teacher_rows": 0.8,
    "val_teacher_accuracy": 0.7,
    "val_teacher_macro_f1": 0.69,
    "val_labeller_accuracy": 0.72,
    "n_test": 872,
    "teacher_n_test": 80,
    "val_n": 200,
    "val_teacher_n": 80,
    "data.n_samples": 1030,
    "data.n_fewshot": 30,
    "data.kept.negative": 500,
    "data.kept.positive": 530,
    "data.dropped_test_overlap": 2,
    "data.dropped_high_energy": 0,
    "train.n_train": 1030,
    "train.epochs_run": 3,
}
PARAMS = {
    "task": "sst2",
    "method": "llkd",
    "seed": 0,
    "teacher": {"backend": "local", "model": "smollm2-135m-instruct"},
    "train": {"model": "minilm-l6", "recipe": "finetune"},
}
META = {"task": "sst2", "fields": ["text"], "labels": ["negative", "positive"], "max_length": 128}
SPEC = {
    "kind": "single",
    "instruction": "Classify the sentiment of each movie review sentence.",
    "fields": [{"name": "text", "description": "one sentence from a movie review"}],
}


def test_model_card_is_written_from_the_runs_numbers():
    from distill.deploy.card import model_card

    card = model_card(
        META,
        PARAMS,
        METRICS,
        {
            "model_name": "distill-sst2",
            "version": "3",
            "alias": "champion",
            "run_id": "abc123",
            "git_commit": "f00d",
            "dvc_exp": "brisk-fawn",
            "params_sha256": "9e1f",
        },
        SPEC,
    )
    assert card.startswith("# distill-sst2: the distilled student for `sst2`")
    assert "- Labels: `negative`, `positive`" in card and "one sentence from a movie review" in card
    assert "Teacher: `smollm2-135m-instruct` (backend `local`)" in card and "Method: `llkd`" in card
    assert "| student | 0.8412 | 0.8398 | 0.8300 | 0.8200 |" in card
    assert (
        "| teacher | 0.7125 | 0.7000 | 0.7000 | 0.6900 |" in card
        and "| labeller | 0.7375 | 0.7300 | 0.7200 | – |" in card
    )
    assert "a sample of 80 of them, where the student scores 0.8500" in card  # the fair comparison is stated
    assert "Training set: 1030 rows (negative 500, positive 530), 30 of them real few-shot rows" in card
    assert "Dropped: 2 as copies of test rows" in card and "high-energy" not in card  # zero counts say nothing
    assert "Registered model: `distill-sst2` version 3, @champion when registered" in card
    for value in ("abc123", "f00d", "brisk-fawn", "9e1f"):
        assert f"`{value}`" in card
    assert "## Intended use and limits" in card and "Evaluated only on the task's test split" in card
    assert "Teacher check" not in card  # not measured in these metrics: nothing said
    checked = model_card(META, PARAMS, {**METRICS, "val_reference_accuracy": 0.75, "val_teacher_gain": -0.03}, {}, SPEC)
    assert (
        "Teacher check (validation) the fewshot labels alone (a linear probe) 0.7500: the teacher adds nothing"
        in checked
    )


def test_model_card_without_labeller_validation_or_spec():
    """`labelled` on all of validation: no labeller, no val_* metrics; a stage run alone has no task spec."""
    from distill.deploy.card import model_card

    metrics = {k: v for k, v in METRICS.items() if not k.startswith(("labeller", "val_"))} | {"val_n": 0}
    card = model_card(META, {**PARAMS, "method": "labelled"}, metrics, {})
    assert "| labeller" not in card and "| student | 0.8412 | 0.8398 | – | – |" in card
    assert "No validation metrics" in card and "Registered model" not in card and "- Input: `text`" in card
    generator = model_card(
        {"task": "svamp", "fields": ["input"], "labels": [], "kind": "generator"},
        {**PARAMS, "train": {"lm_model": "smollm2-135m"}},
        {"student_accuracy": 0.1, "n_test": 12},
        {},
    )
    assert "writes the answer" in generator and "Labels" not in generator and "`smollm2-135m`" in generator


def test_input_rows_accept_lists_series_and_frames_and_name_a_missing_field():
    import pandas as pd
    import pytest
    from mlflow.exceptions import MlflowException

    from distill.students.serving import input_rows

    one, pair = ["text"], ["text_a", "text_b"]
    assert input_rows(["a", "b"], one) == [{"text": "a"}, {"text": "b"}]
    assert input_rows(pd.Series(["a"]), one) == [{"text": "a"}]
    assert input_rows(pd.DataFrame({"label": ["x"], "text": ["a"]}), one) == [{"text": "a"}]  # extra columns ignored
    assert input_rows(pd.DataFrame([["p", "h"]]), pair) == [{"text_a": "p", "text_b": "h"}]  # unnamed: in field order
    assert input_rows([("p", "h")], pair) == input_rows([{"text_b": "h", "text_a": "p"}], pair)
    assert input_rows(pd.DataFrame({"text": [5]}), one) == [{"text": "5"}]
    with pytest.raises(
        MlflowException, match=r"missing field\(s\) \['text_b'\]: expected columns \['text_a', 'text_b'\]"
    ) as e:
        input_rows(pd.DataFrame({"text_a": ["p"], "hypothesis": ["h"]}), pair)
    assert e.value.get_http_status_code() == 400 and "\n" not in e.value.message
    for bad, said in (
        (pd.DataFrame({"text": [None]}), "field 'text' must be one text, got NoneType"),
        ([{"text": ["a", "b"]}], "got list"),
        (["p"], r"row 0 has 1 text\(s\)"),
    ):
        with pytest.raises(MlflowException, match=said):
            input_rows(bad, pair if said.startswith("row") else one)


def test_logged_student_has_signature_example_and_card(tmp_path, monkeypatch, tiny_student):
    """log_student_run: the pyfunc answers label, score and p_<label> per row; its signature and input example are
    in the MLmodel; the card is the version's and the model's description and README.md at the model's root."""
    import mlflow
    import pandas as pd

    from distill.students.model import new_student
    from distill.tracking import log_student_run

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    new_student(tiny_student, ["negative", "positive"], ["text"], 0, max_length=32, task="toy").save_pretrained(
        "student"
    )
    result = log_student_run(
        "t",
        "r",
        {"method": "zerogen"},
        {"val_student_accuracy": 0.5},
        {},
        "student",
        "distill-toy",
        "val_student_accuracy",
        examples=[{"text": "a fine movie", "label": "positive"}],
        card=lambda r: f"# card\n\nversion {r['version']} of {r['model_name']}, run {r['run_id']}\n",
    )
    assert result["alias"] == "champion" and result["card"].startswith("# card\n\nversion 1 of distill-toy")
    model = mlflow.pyfunc.load_model("models:/distill-toy@champion")
    sig = model.metadata.signature
    assert sig.inputs.input_names() == ["text"] and sig.inputs.input_types()[0].name == "string"
    assert sig.outputs.input_names() == ["label", "score", "p_negative", "p_positive"]
    local = mlflow.artifacts.download_artifacts("models:/distill-toy@champion")
    example = mlflow.models.Model.load(local).load_input_example(local)
    assert example.to_dict("list") == {"text": ["a fine movie"]}  # its text fields only
    pred = model.predict(pd.DataFrame({"text": ["a wonderful movie", "dull"], "label": ["x", "y"]}))
    assert list(pred.columns) == ["label", "score", "p_negative", "p_positive"] and len(pred) == 2
    assert ((pred["p_negative"] + pred["p_positive"] - 1).abs() < 1e-5).all()
    assert (pred["score"] == pred[["p_negative", "p_positive"]].max(axis=1)).all()
    readme = mlflow.artifacts.download_artifacts("models:/distill-toy@champion/README.md")
    client = mlflow.MlflowClient()
    assert open(readme).read() == result["card"] == client.get_model_version("distill-toy", "1").description
    assert client.get_registered_model("distill-toy").description == result["card"]

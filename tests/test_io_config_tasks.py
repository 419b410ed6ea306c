"""Bad input gets one clear line naming the file:line or params field."""

import json

import pytest
import yaml

from distill.config import load_params
from distill.core.io import DistillError, atomic_path, read_jsonl, write_jsonl
from distill.core.tasks import load_task


def test_malformed_jsonl_line_is_named(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_text('{"text": "ok"}\n{"text": broken\n')
    with pytest.raises(DistillError, match=r"x\.jsonl:2: malformed JSON"):
        read_jsonl(p)


def test_missing_field_is_named(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_text('{"text": "ok"}\n\n{"other": 1}\n')
    with pytest.raises(DistillError, match=r"x\.jsonl:3: missing or empty field 'text'"):
        read_jsonl(p, required=["text"])


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    out = tmp_path / "out.jsonl"
    with pytest.raises(RuntimeError):
        with atomic_path(out) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
    assert write_jsonl(out, [{"a": 1, "_line": 3}]) == 1
    assert json.loads(out.read_text()) == {"a": 1}  # private keys are not written


def test_params_unknown_key_and_wrong_type(tmp_path):
    p = tmp_path / "params.yaml"
    p.write_text("train:\n  epochz: 3\n")
    with pytest.raises(DistillError, match=r"params\.yaml: train\.epochz: Extra inputs are not permitted"):
        load_params(p)
    p.write_text("generate:\n  n_per_label: many\n")
    with pytest.raises(DistillError, match=r"generate\.n_per_label: .*integer.*'many'"):
        load_params(p)
    p.write_text("train: [unclosed\n")
    with pytest.raises(DistillError, match=r"params\.yaml: invalid YAML \(.*line 2") as e:
        load_params(p)
    assert "<unicode string>" not in str(e.value)  # the file is named once, at the start
    p.write_text("seed: 1\ntrain:\n  epochs: 2\nseed: 2\n")  # plain YAML would keep seed 2 without a word
    with pytest.raises(DistillError, match=r"params\.yaml: invalid YAML \(duplicate key 'seed' line 4"):
        load_params(p)
    p.write_text("train:\n  epochs: true\n")  # lax pydantic would read 1
    with pytest.raises(
        DistillError, match=r"params\.yaml: train\.epochs: a yes/no value where a number or text belongs"
    ):
        load_params(p)
    p.write_text("train:\n  select_on_validation: true\n  epochs: 3\n")
    assert load_params(p).train.select_on_validation is True


def test_outputs_get_the_usual_file_mode(tmp_path):
    """Atomic writes go through mkstemp/mkdtemp (owner-only); the results must be as readable as open() makes them."""
    import os

    from distill.core.io import atomic_dir

    mask = os.umask(0o022)
    try:
        write_jsonl(tmp_path / "a.jsonl", [{"a": 1}])
        with atomic_dir(tmp_path / "model") as d:
            (d / "w.bin").write_bytes(b"x")
    finally:
        os.umask(mask)
    assert (tmp_path / "a.jsonl").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "model").stat().st_mode & 0o777 == 0o755


def test_repo_params_are_valid_and_documented():
    from conftest import REPO

    from distill.config import Params
    from distill.core.sections import Section

    assert load_params(REPO / "params.yaml").task == "sst2"
    # every section, each method's too, is written out: a stage declaring a key params.yaml lacks fails under DVC
    assert set(yaml.safe_load((REPO / "params.yaml").read_text())) == set(Params.model_fields)

    def walk(model):
        for name, field in model.model_fields.items():
            ann = field.annotation
            if isinstance(ann, type) and issubclass(ann, Section):
                walk(ann)
            else:
                assert field.description, f"{model.__name__}.{name} has no help text"

    walk(Params)


def test_method_auto_is_llkd_for_classification_with_a_pool_else_zerogen(toy_task, tmp_path):
    from conftest import REPO, make_toy_seq2seq

    from distill.config import Params
    from distill.methods.auto import resolve
    from distill.methods.registry import method_of

    auto = load_params(REPO / "params.yaml")
    assert auto.method == Params().method == "auto"
    assert resolve(auto, toy_task).method == "llkd"  # labels + real unlabelled text: the teacher pseudo-labels it
    assert resolve(auto, make_toy_seq2seq(tmp_path / "s")).method == "zerogen"  # a generation task
    assert resolve(auto.model_copy(update={"method": "gold"}), toy_task).method == "gold"  # a concrete method stays
    (toy_task / "unlabeled.jsonl").write_text("\n")
    assert resolve(auto, toy_task).method == "zerogen"  # no pool to label
    with pytest.raises(ValueError, match="resolved"):
        method_of(auto)


def test_unknown_label_and_task(toy_task, tmp_path):
    with (toy_task / "test.jsonl").open("a") as f:
        f.write('{"text": "meh", "label": "neutral"}\n')
    task = load_task(toy_task)
    with pytest.raises(DistillError, match=r"test\.jsonl:41: unknown label 'neutral'"):
        task.load("test")
    with (toy_task / "test.jsonl").open("w") as f:  # a list is no label either (and must not crash on hashing)
        f.write('{"text": "meh", "label": ["positive"]}\n')
    with pytest.raises(DistillError, match=r"test\.jsonl:1: unknown label \['positive'\]"):
        load_task(toy_task).load("test")
    with pytest.raises(DistillError, match="unknown task"):
        load_task(tmp_path / "nope")


def test_task_yaml_is_validated(toy_task):
    (toy_task / "task.yaml").write_text(
        "kind: single\ninstruction: x\nfields: []\nlabels: [{name: a, description: b}]\n"
    )
    with pytest.raises(DistillError, match=r"task\.yaml: \(root\): .*needs 1 field"):
        load_task(toy_task)
    (toy_task / "task.yaml").write_text(
        "kind: single\ninstruction: x\nfields: [{name: text, display: T, description: d}]\n"
        "labels: [{name: a, description: b}]\n"
    )
    with pytest.raises(DistillError, match=r"task\.yaml: \(root\): .*at least 2 labels"):
        load_task(toy_task)


def test_task_without_task_yaml_is_inferred(toy_task, tmp_path, capsys):
    """A folder in the shared data format with no task.yaml still runs: kind from the row keys, label order from
    the DATASET.md card, the card's first sentence in the prompts."""
    (toy_task / "task.yaml").unlink()
    (toy_task / "DATASET.md").write_text(
        "# Toy\n\nSentiment of tiny movie reviews. More words.\n\nLabel names: `positive`, `negative`\n"
    )
    task = load_task(toy_task)
    assert task.spec.kind == "single" and task.spec.label_names == ["positive", "negative"] and task.name == "toy"
    assert (
        task.spec.instruction.startswith("Sentiment of tiny movie reviews.")
        and "positive, negative" in task.spec.instruction
    )
    assert "sentiment of tiny movie reviews" in task.spec.fields[0].description
    assert len(task.load("test")) == 40 and "no task.yaml" in capsys.readouterr().err
    load_task(toy_task)
    assert "no task.yaml" not in capsys.readouterr().err  # said once per folder, not on every load
    (toy_task / "DATASET.md").unlink()
    assert load_task(toy_task).spec.label_names == ["negative", "positive"]  # no card: sorted

    pair = tmp_path / "pair"
    pair.mkdir()
    rows = [
        {"text_a": f"premise {i}", "text_b": f"hypothesis {i}", "label": ["entailment", "not_entailment"][i % 2]}
        for i in range(4)
    ]
    for split in ("fewshot", "validation"):
        write_jsonl(pair / f"{split}.jsonl", rows)
    spec = load_task(pair).spec
    assert spec.kind == "pair" and spec.field_names == ["text_a", "text_b"]
    assert [l.word for l in spec.labels] == ["entailment", "not entailment"]

    seq = tmp_path / "seq"
    seq.mkdir()
    for split in ("fewshot", "validation"):
        write_jsonl(seq / f"{split}.jsonl", [{"input": "1 + 1 ?", "target": "2"}])
    spec = load_task(seq).spec  # input/target rows: a seq2seq task, numeric answers, no worked equations
    assert spec.kind == "seq2seq" and spec.target.check == "numeric" and spec.target.equation is None


def test_add_task_copies_checked_rows_and_writes_an_editable_task_yaml(toy_task, tmp_path):
    from distill.core.tasks import add_task

    (toy_task / "task.yaml").unlink()
    with (toy_task / "unlabeled.jsonl").open("a") as f:
        f.write("{not json\n")
    with pytest.raises(DistillError, match=r"unlabeled\.jsonl:31"):
        add_task(toy_task, tmp_path / "tasks", "mine")
    assert not (tmp_path / "tasks" / "mine").exists()  # nothing half-written
    lines = (toy_task / "unlabeled.jsonl").read_text().splitlines()[:-1]
    (toy_task / "unlabeled.jsonl").write_text("\n".join(lines) + "\n")
    out = add_task(toy_task, tmp_path / "tasks", "mine")
    assert sorted(p.name for p in out.iterdir()) == [
        "fewshot.jsonl",
        "task.yaml",
        "test.jsonl",
        "unlabeled.jsonl",
        "validation.jsonl",
    ]
    assert "edit the instruction" in (out / "task.yaml").read_text()
    assert load_task(out).spec.label_names == load_task(toy_task).spec.label_names  # the written task.yaml is read back
    with pytest.raises(DistillError, match="already exists"):
        add_task(toy_task, tmp_path / "tasks", "mine")


def test_add_task_without_unlabelled_text_writes_an_empty_pool_that_auto_reads_as_none(toy_task, tmp_path, capsys):
    """A folder with labels only (ZeroGen's case) is a task: dvc.yaml declares unlabeled.jsonl, so it gets an empty one."""
    from distill.config import Params
    from distill.core.tasks import add_task
    from distill.methods.auto import rule

    (toy_task / "unlabeled.jsonl").unlink()
    out = add_task(toy_task, tmp_path / "tasks", "labels-only")
    assert (out / "unlabeled.jsonl").read_text() == ""
    assert f"{out / 'unlabeled.jsonl'} is empty: `method: auto` runs zerogen" in capsys.readouterr().err
    task = load_task(out)
    assert task.load("unlabeled") == []
    assert rule(Params(), task).method == "zerogen"


def test_inferred_question_task_asks_for_questions_with_real_examples(tmp_path, capsys):
    """A 6-class question folder brought in with add-task: the prompts say 'a question', show real examples of the
    label, and the written task.yaml is read without the inferred-spec notice."""
    from distill.prompting.generation import build_requests
    from distill.core.tasks import add_task

    src = tmp_path / "questions"
    src.mkdir()
    labels = ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"]
    rows = [
        {"text": f"What is question number {i} about {labels[i % 6].lower()} ?", "label": labels[i % 6]}
        for i in range(48)
    ]
    for split in ("test", "validation", "fewshot"):
        write_jsonl(src / f"{split}.jsonl", rows)
    write_jsonl(src / "unlabeled.jsonl", [{"text": r["text"]} for r in rows])
    (src / "DATASET.md").write_text(
        "# Q\n\nOpen-domain questions classified by the type of their answer.\n\n"
        f"Label names: {', '.join(f'`{l}`' for l in labels)}\n"
    )
    out = add_task(src, tmp_path / "tasks")
    assert "no task.yaml" not in capsys.readouterr().err  # add-task writes the spec: nothing to warn about
    spec = load_task(out).spec
    assert "no task.yaml" not in capsys.readouterr().err
    assert spec.fields[0].form == "question" and spec.fields[0].description.startswith("a question")
    assert spec.instruction.endswith("Label each question as one of: ABBR, DESC, ENTY, HUM, LOC, NUM.")
    assert spec.demos_per_prompt == 3
    fewshot = load_task(out).load("fewshot")
    req = build_requests(spec, 1, fewshot, [], spec.demos_per_prompt, '"', seed=0)
    assert len(req) == 6 and all(len(r["demos"]) == 3 for r in req)
    loc = next(r for r in req if r["label"] == "LOC")
    prompt = loc["messages"][0][1]
    assert "Write a question" in prompt and all(d in prompt for d in loc["demos"])
    assert all(d.endswith("about loc ?") for d in loc["demos"])  # the label's own real examples


def test_describe_examples():
    from distill.core.tasks import describe_examples

    assert describe_examples(["Who is he?", "Where is it?", "What now?"])[2] == "question"
    assert describe_examples(["a fine film .", "dull and long ."])[0] == "a single sentence"
    long = " ".join(["This is a sentence of some words."] * 6)
    assert describe_examples([long, long])[0] == "a short text of a few sentences"


def test_non_utf8_bytes_are_one_line_errors(tmp_path, toy_task):
    from distill.core.tasks import add_task

    bad = tmp_path / "x.jsonl"
    bad.write_bytes(b'{"text": "fine", "label": "positive"}\n{"text": "caf\xe9", "label": "positive"}\n')
    with pytest.raises(DistillError, match=r"x\.jsonl:2: not UTF-8 \(byte 0xe9 at column 14\)"):
        read_jsonl(bad)
    (toy_task / "test.jsonl").write_bytes(
        (toy_task / "test.jsonl").read_bytes() + b'{"text": "\xff", "label": "negative"}\n'
    )
    with pytest.raises(DistillError, match=r"test\.jsonl:41: not UTF-8"):
        add_task(toy_task, tmp_path / "tasks2", "x")
    assert not (tmp_path / "tasks2" / "x").exists()
    (toy_task / "task.yaml").write_bytes(b"kind: single\ninstruction: caf\xe9\n")
    with pytest.raises(DistillError, match=r"task\.yaml:2: not UTF-8"):
        load_task(toy_task)


def test_task_check_finds_bad_splits_before_any_llm_call(toy_task):
    task = load_task(toy_task)
    assert task.check() == {"test": 40, "validation": 20, "fewshot": 8, "unlabeled": 30}
    (toy_task / "fewshot.jsonl").write_text("")
    with pytest.raises(DistillError, match=r"fewshot\.jsonl: no rows"):
        task.check()
    (toy_task / "fewshot.jsonl").write_text('{"text": "ok", "label": "positive"}\n')
    (toy_task / "test.jsonl").unlink()
    with pytest.raises(DistillError, match=r"test\.jsonl: file not found"):
        task.check()


def test_an_over_long_line_is_refused_with_file_and_line(tmp_path):
    """A 5 MB single line (a corpus pasted on one line) is refused by its size, read no further than the limit."""
    from distill.core.io import MAX_LINE_BYTES

    p = tmp_path / "x.jsonl"
    p.write_text('{"text": "ok"}\n{"text": "' + "a" * 5_000_000 + '"}\n{"text": "never read"}\n')
    with pytest.raises(DistillError, match=rf"x\.jsonl:2: line is 5000012 bytes, over the {MAX_LINE_BYTES}-byte limit"):
        read_jsonl(p)
    p.write_bytes(b'{"t": "' + b"a" * 3 + b'"}\n' + b'{"t": "' + b"a" * 4 + b'"}')  # 12 and 13 bytes, no final newline
    assert len(read_jsonl(p, max_line_bytes=13)) == 2  # at the limit is fine, with or without a newline
    with pytest.raises(DistillError, match=r"x\.jsonl:2: line is 13 bytes, over the 12-byte limit"):
        read_jsonl(p, max_line_bytes=12)


def test_shipped_data_is_well_under_the_line_limit():
    from conftest import REPO

    from distill.core.io import MAX_LINE_BYTES

    files = sorted(REPO.glob("data/tasks/*/*.jsonl")) + sorted((REPO.parent / "shared" / "data").glob("*/*.jsonl"))
    assert files
    longest = max(len(line) for f in files for line in f.read_bytes().splitlines())
    assert longest < MAX_LINE_BYTES / 100  # ~1.5 kB (an RTE pair) against 1 MiB


def test_integer_labels_load_with_an_inferred_or_written_spec(tmp_path):
    """A Hugging Face export holds class ids (0, 1): with no task.yaml the labels are "0", "1", and rows load."""
    root = tmp_path / "ints"
    root.mkdir()
    rows = [{"text": f"review number {i}", "label": i % 2} for i in range(6)]
    for split in ("test", "validation", "fewshot"):
        write_jsonl(root / f"{split}.jsonl", rows)
    write_jsonl(root / "unlabeled.jsonl", [{"text": "an unlabelled review"}])
    task = load_task(root, quiet=True)
    assert task.spec.label_names == ["0", "1"] and task.check()["test"] == 6
    assert [r["label"] for r in task.load("test")][:2] == ["0", "1"]  # names from here on, as every stage compares
    write_jsonl(root / "test.jsonl", [{"text": "a third kind", "label": 7}, {"text": "a flag", "label": True}])
    with pytest.raises(
        DistillError,
        match=r"test\.jsonl:1: unknown label 7 \(labels inferred from fewshot\.jsonl and "
        r"validation\.jsonl, no task\.yaml: 0, 1\)",
    ):
        task.load("test")
    write_jsonl(root / "test.jsonl", [{"text": "a flag", "label": True}])  # a JSON true is no class id
    with pytest.raises(DistillError, match=r"test\.jsonl:1: unknown label True \(labels inferred"):
        task.load("test")
    (root / "task.yaml").write_text(
        "kind: single\ninstruction: x\nfields: [{name: text, display: T, description: d}]\n"
        "labels: [{name: 0, description: bad}, {name: '1', description: good}]\n"
    )
    task = load_task(root)  # `name: 0` unquoted in YAML is the label "0"
    assert task.spec.label_names == ["0", "1"] and task.load("fewshot")[1]["label"] == "1"
    with pytest.raises(DistillError, match=r"unknown label True \(task\.yaml labels: 0, 1\)"):
        task.load("test")


def test_inferred_integer_labels_are_in_id_order(tmp_path):
    root = tmp_path / "many"
    root.mkdir()
    write_jsonl(root / "fewshot.jsonl", [{"text": f"t {i}", "label": i} for i in range(12)])
    write_jsonl(root / "validation.jsonl", [{"text": "t", "label": "3"}])  # a string id is the same label
    assert load_task(root, quiet=True).spec.label_names == [str(i) for i in range(12)]  # 2 before 10

"""The package's layers (distill/architecture.py): no module imports from a layer above its own, every file has a
place, and docs/architecture.md's picture is the one the imports draw."""

from __future__ import annotations

from conftest import REPO
from distill import architecture


def test_no_module_imports_from_a_higher_layer():
    assert architecture.upward() == []


def test_every_source_file_belongs_to_a_layer():
    parts = {architecture.part_of(p.relative_to(architecture.SRC).as_posix()) for p in architecture.SRC.rglob("*.py")}
    assert parts == {p for layer in architecture.LAYERS for p in layer}  # each part is used, and has a layer


def test_an_upward_import_is_reported(monkeypatch):
    """energy.py (core) importing a stage would be reported: the check is not vacuous."""
    real = architecture.imports
    monkeypatch.setattr(
        architecture, "imports", lambda p: real(p) | ({"stages/train.py"} if p.name == "energy.py" else set())
    )
    assert architecture.upward() == ["core/energy.py -> stages/train.py (core imports stages)"]
    assert architecture.part_of("methods/gold/stages.py") == "method stages"
    assert (
        architecture.part_of("methods/gold/cli.py") == "cli"
        and architecture.part_of("methods/gold/method.py") == "methods"
    )


def test_the_docs_picture_is_drawn_from_the_current_imports():
    doc = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    assert architecture.render(doc) == doc, "run: python -m distill.architecture"


def kind_questions(source: str) -> list[str]:
    """Where code asks which kind a task is: `<x>.seq2seq`, or a comparison with a task kind's name."""
    import ast

    from distill.kinds import CLASSIFICATION, SEQ2SEQ

    names = {CLASSIFICATION.name, SEQ2SEQ.name}
    found = [
        node
        for node in ast.walk(ast.parse(source))
        if (isinstance(node, ast.Attribute) and node.attr == "seq2seq")
        or (
            isinstance(node, ast.Compare)
            and any(isinstance(c, ast.Constant) and c.value in names for c in [node.left, *node.comparators])
        )
    ]
    return [f"{node.lineno}: {ast.unparse(node)}" for node in sorted(found, key=lambda n: (n.lineno, n.col_offset))]


def test_no_method_asks_which_kind_a_task_is():
    """A method calls its task's kind (kinds/: kind_of(spec)) or picks its own per-kind code by kind.name, never
    `if spec.seq2seq`. methods/auto.py is left out: it picks a method for a task, it runs none."""
    found = [
        f"{path.relative_to(architecture.SRC).as_posix()}:{where}"
        for path in sorted((architecture.SRC / "methods").rglob("*.py"))
        if path != architecture.SRC / "methods" / "auto.py"
        for where in kind_questions(path.read_text(encoding="utf-8"))
    ]
    assert found == []
    # the check is not vacuous: what the methods asked before the kinds answered
    assert kind_questions(
        "if spec.seq2seq:\n    pass\nx = 0 if task.spec.seq2seq else 1\ny = kind.name == 'seq2seq'\n"
    ) == [
        "1: spec.seq2seq",
        "3: task.spec.seq2seq",
        "4: kind.name == 'seq2seq'",
    ]

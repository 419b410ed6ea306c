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
    assert architecture.upward() == ["energy.py -> stages/train.py (core imports stages)"]
    assert architecture.part_of("methods/gold/stages.py") == "method stages"
    assert (
        architecture.part_of("methods/gold/cli.py") == "cli"
        and architecture.part_of("methods/gold/method.py") == "methods"
    )


def test_the_docs_picture_is_drawn_from_the_current_imports():
    doc = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    assert architecture.render(doc) == doc, "run: python -m distill.architecture"

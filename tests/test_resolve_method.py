"""The resolve_method stage: which method a run executes and a hash of its code (data/work/method.json), what the
shared stages depend on in dvc.yaml instead of every method's folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from conftest import REPO, write_params
from test_dvc_contract import dvc_stages, imports_of


def test_the_method_hash_covers_what_the_running_methods_hooks_run():
    """data/work/method.json stands for a method's code in the shared stages' deps: everything its hooks (method.py)
    import in methods/ is in the files it hashes. Other methods' method.py, imported by the registry to build its
    table, run no hook of theirs (their module level only defines a `Method`)."""
    from distill.methods.base import source_files
    from distill.methods.registry import NAMES

    src = REPO / "src" / "distill"
    for name in NAMES:
        hashed = set(source_files(name))
        todo, seen = [src / "methods" / name / "method.py"], set()
        while todo:
            f = todo.pop()
            if f in seen:
                continue
            seen.add(f)
            if f.name != "registry.py":  # the registry's table: every method's module level, no hook
                todo += imports_of(f)
        outside = sorted(f.relative_to(src).as_posix() for f in seen if "methods" in f.parts and f not in hashed)
        assert outside == [], f"{name}: its hooks run {outside}, which method.json does not hash"


def test_the_method_hash_changes_with_the_running_methods_code_only(tmp_path, monkeypatch):
    """Editing GOLD's folder changes GOLD's hash and not LLKD's: an LLKD run's shared stages do not re-run."""
    from distill.methods import base

    here = Path(base.__file__).parent
    copy = tmp_path / "methods"
    shutil.copytree(here, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(base, "__file__", str(copy / "base.py"))
    before = {n: base.source_sha256(n) for n in ("gold", "llkd")}
    (copy / "gold" / "algorithm.py").write_text((copy / "gold" / "algorithm.py").read_text() + "\n# edited\n")
    assert base.source_sha256("gold") != before["gold"] and base.source_sha256("llkd") == before["llkd"]
    (copy / "auto.py").write_text((copy / "auto.py").read_text() + "\n# edited\n")
    assert base.source_sha256("llkd") != before["llkd"]  # the shared methods/ files are every method's code


def test_the_stage_writes_the_resolved_method_and_its_hash(tmp_path, toy_task, monkeypatch):
    from distill.config import load_params
    from distill.methods.base import source_sha256
    from distill.stages import resolve_method

    monkeypatch.chdir(tmp_path)
    for written, runs in (("auto", "llkd"), ("gold", "gold")):  # the toy task has an unlabelled pool: auto -> llkd
        params = load_params(write_params(tmp_path / "params.yaml", task="toy", method=written))
        resolve_method.run(params, str(toy_task), "w/method.json")
        out = json.loads(Path("w/method.json").read_text())
        assert (out["method"], out["as_written"], out["source_sha256"]) == (
            written and runs,
            written,
            source_sha256(runs),
        )
        assert f"methods/{runs}/method.py" in out["source_files"] and "methods/auto.py" in out["source_files"]


def test_source_deps_follow_the_layout():
    """dvc.yaml names folders, not hand lists of files: a stage's source deps are folders (core, a layer's package, a
    method's folder), the stage's own module, and the few layer modules that are single files."""
    single_files = {"synthesis.py", "resolved.py", "tracking.py", "deploy/card.py"}
    src = REPO / "src" / "distill"
    for name, stage in dvc_stages().items():
        for dep in stage["deps"]:
            rel = dep.removeprefix("src/distill/")
            if dep.startswith("src/"):
                assert (src / rel).is_dir() or rel.startswith("stages/") or rel in single_files, f"{name}: {dep}"

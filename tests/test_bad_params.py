"""Params that must never run: pasted keys, numbers DVC thinks unchanged, task names that are paths. Unit tests of
the rules, then the same inputs through a real `dvc exp run -S` (check_task runs on every run and fails first)."""

import re
import uuid
import subprocess
import zlib
from pathlib import Path

import pytest
import yaml

from conftest import write_params
from distill.config import load_params
from distill.core.io import DistillError
from distill.core.secrets import scrub
from distill.core.tasks import add_task, load_task
from test_e2e import project, sh  # noqa: F401 - `project` is a fixture

# Made at run time: the copied repository holds this file, and a literal key in it would be found by the greps.
KEY = f"sk-test-CANARY1{uuid.uuid4().hex}abc"


@pytest.mark.parametrize(
    "params, said",
    [
        ({"train": {"epochs": True}}, "train.epochs: a yes/no value where a number or text belongs"),
        ({"generate": {"n_per_label": 1000.0}}, "generate.n_per_label: a decimal number where a whole number belongs"),
        ({"task": "../../evil"}, "task: must be the name of a folder under data/tasks/"),
        ({"task": "/abs/path"}, "task: must be the name of a folder under data/tasks/"),
    ],
)
def test_params_a_stage_would_misread_are_refused(tmp_path, params, said):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    with pytest.raises(DistillError, match=re.escape(said)):
        load_params(path)


def test_floats_stay_allowed_where_a_float_belongs(tmp_path):
    p = load_params(write_params(tmp_path / "params.yaml", train={"lr": 1, "epochs": 2}, gold={"final_lr": 1}))
    assert p.train.lr == 1.0 and p.train.epochs == 2 and p.gold.final_lr == 1.0


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()


def objects_holding(repo: Path, text: bytes) -> list[Path]:
    return [
        o for o in (repo / ".git" / "objects").glob("[0-9a-f][0-9a-f]/*") if text in zlib.decompress(o.read_bytes())
    ]


def test_a_pasted_key_is_taken_out_of_params_and_unreferenced_git_objects(tmp_path):
    repo = tmp_path / "r"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "README").write_text("a repository with a commit, as DVC needs\n")
    git(repo, "add", "README")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "first")
    (repo / "params.yaml").write_text(f"teacher:\n  api_key_env: {KEY}   # the name, not the key\n")
    git(repo, "hash-object", "-w", "params.yaml")  # what DVC's stash leaves: a loose blob nothing references
    with pytest.raises(DistillError) as e:
        load_params(repo / "params.yaml")
    said = str(e.value)
    assert KEY not in said and "not the key itself" in said and "removed from params.yaml" in said, said
    assert "1 unreferenced git object(s) holding it deleted" in said, said
    assert (repo / "params.yaml").read_text() == "teacher:\n  api_key_env:    # the name, not the key\n"
    assert objects_holding(repo, KEY.encode()) == []
    assert load_params(repo / "params.yaml").teacher.api_key_env is None  # the file is valid again


def test_a_committed_key_is_left_to_the_user_and_said(tmp_path):
    repo = tmp_path / "r"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "secret.txt").write_text(KEY)
    git(repo, "add", "secret.txt")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "oops")
    (repo / "params.yaml").write_text(f"teacher:\n  api_key_env: {KEY}\n")
    said = scrub(repo / "params.yaml", KEY)
    assert "1 committed git object(s) still hold it" in said and "revoke the key" in said
    assert len(objects_holding(repo, KEY.encode())) == 1 and git(repo, "fsck") == ""  # nothing reachable was touched


def test_task_names_are_plain_folder_names(tmp_path, toy_task):
    for bad in ("../../evil", "/abs/path", ".hidden", "a/b"):
        with pytest.raises(DistillError, match="is not a plain folder name"):
            add_task(toy_task, tmp_path / "dest", name=bad)
    assert not (tmp_path / "evil").exists() and not (tmp_path / "dest").exists()
    assert add_task(toy_task, tmp_path / "dest", name="toy-2").parent == tmp_path / "dest"
    with pytest.raises(DistillError, match=r"unknown task .*tasks in .*: toy-2; add one with `distill add-task`"):
        load_task(tmp_path / "dest" / "nope")


@pytest.mark.e2e
def test_bad_params_stop_a_real_dvc_exp_run_before_anything_is_kept(project):  # noqa: F811
    """Each through `dvc exp run -S`: one line naming the key, non-zero exit, no experiment, no key anywhere."""
    repo, env = project
    cases = [
        (f"teacher.api_key_env={KEY}", "teacher.api_key_env: must be the NAME of an environment variable"),
        (
            "train.epochs=true",
            "train.epochs: a yes/no value where a number or text belongs",
        ),  # epochs is 1: DVC sees no change
        ("generate.n_per_label=1e3", "generate.n_per_label: a decimal number where a whole number belongs"),
        ("task=nope", "data/tasks/nope: unknown task (no such folder; tasks in data/tasks: ag_news,"),
        ("task=../../evil", "task: must be the name of a folder under data/tasks/"),
    ]
    for i, (override, said) in enumerate(cases):
        r = subprocess.run(
            ["dvc", "exp", "run", "-n", f"bad{i}", "-S", override],
            cwd=repo,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert r.returncode != 0 and said in r.stdout + r.stderr, r.stdout + r.stderr
        sh("git", "checkout", "-q", "params.yaml", cwd=repo, env=env)
    shown = sh("dvc", "exp", "show", "--json", cwd=repo, env=env)
    assert KEY not in shown and not any(f'"bad{i}"' in shown for i in range(len(cases)))
    leaked = subprocess.run(["grep", "-rl", KEY, "."], cwd=repo, capture_output=True, text=True).stdout
    assert leaked == "", leaked
    every_object = subprocess.run(["git", "cat-file", "--batch-all-objects", "--batch"], cwd=repo, capture_output=True)
    assert KEY.encode() not in every_object.stdout

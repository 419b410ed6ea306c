"""The tracking store from several processes at once, and from inside a DVC experiment's temporary copy."""
import subprocess
import sys

from distill.io import project_root

WRITER = """
import sys
from distill.tracking import log_iteration_run
for i in range(6):
    log_iteration_run("concurrent", f"{sys.argv[1]}-{i}", {"who": sys.argv[1]}, {"i": i}, {"pipeline": "test"}, {"a.txt": "x"})
"""


def test_two_processes_log_at_once_without_database_locked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, name], cwd=tmp_path, stderr=subprocess.PIPE, text=True)
             for name in ("a", "b", "c")]
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

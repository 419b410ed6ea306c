"""dvc.yaml says exactly what each stage reads: its params (recorded while every stage runs under every method)
and its source files (the stage module's import closure). A stage that reads an undeclared param would not
re-run when it changes; a declared runtime knob (a timeout) would re-run it for nothing."""

from __future__ import annotations

import json
import contextlib
import re
from pathlib import Path

import pytest
import yaml

from conftest import REPO, write_params
from distill.config import Params, Section, runtime_keys


def dvc_stages() -> dict[str, dict]:
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    return {name: (st["do"] if "foreach" in st else st) for name, st in stages.items()}


@contextlib.contextmanager
def recording(reads: set[str]):
    """Record every params field read as a dotted key (`train.lr`), through any copy of the objects."""
    original = Section.__getattribute__

    def get(self, name):
        value = original(self, name)
        if not name.startswith("_") and name in type(self).model_fields:
            path = original(self, "__dict__").get("_path")
            if path is not None and not isinstance(value, Section):
                reads.add(path + name)
        return value

    Section.__getattribute__ = get
    try:
        yield
    finally:
        Section.__getattribute__ = original


def tag(params: Params) -> Params:
    object.__setattr__(params, "_path", "")
    for name in type(params).model_fields:
        sub = params.__dict__[name]  # not getattr: tagging is no read of the params
        if isinstance(sub, Section):
            object.__setattr__(sub, "_path", name + ".")
    return params


# (method, recipe, task) -> (the TrainParams the train stage trained its student with, the params MLflow shows)
TRAINED_AND_LOGGED: dict[tuple, tuple[dict, dict]] = {}


def spying_on_training(call, trained: list):
    """Run `call` with every task kind's training recording the config it is given."""
    from distill.kinds import Classification, Seq2Seq

    reals = {cls: cls.train for cls in (Classification, Seq2Seq)}

    def spy_on(real):
        def spy(self, spec, rows, cfg, *args, **kwargs):
            trained.append(cfg)
            return real(self, spec, rows, cfg, *args, **kwargs)

        return spy

    for cls, real in reals.items():
        cls.train = spy_on(real)
    try:
        call()
    finally:
        for cls, real in reals.items():
            cls.train = real


def logged_params(run_id: str) -> dict:
    import mlflow

    from distill.tracking import tracking_uri

    return mlflow.MlflowClient(tracking_uri(Path.cwd())).get_run(run_id).data.params


def commands(params: Params, task_dir: Path) -> list[tuple[str, list[str]]]:
    """dvc.yaml's stages in its order, each as the `distill` arguments DVC would run (a foreach stage once per item of
    the params' list), with the task folder where `data/tasks/${task}` points."""
    import shlex

    out = []
    for name, stage in yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"].items():
        items = [None]
        if "foreach" in stage:  # ${gold.iterations} -> params.gold.iterations
            section, key = stage["foreach"].strip("${}").split(".")
            items = [it.model_dump() for it in getattr(getattr(params, section), key)]
        for item in items:
            cmd = (stage.get("do") or stage)["cmd"].replace("data/tasks/${task}", str(task_dir))
            for k, v in (item or {}).items():
                cmd = cmd.replace(f"${{item.{k}}}", str(v))
            out.append((name, shlex.split(cmd)[1:]))
    return out


def run_all_stages(
    params: Params, task_dir: Path, reads: dict[str, set[str]], key: tuple, mp: pytest.MonkeyPatch
) -> None:
    """Every dvc.yaml command, through the CLI as DVC runs it, recording the params each stage reads."""
    from distill import cli

    mp.setattr(
        "distill.config.load_params",
        lambda path="params.yaml": tag(Params.model_validate(yaml.safe_load(Path(path).read_text()))),
    )  # tagged: its reads are recorded
    trained: list = []
    for stage, args in commands(params, task_dir):
        with recording(reads.setdefault(stage, set())):
            if stage == "train":
                spying_on_training(lambda: cli.cli.main(args, standalone_mode=False), trained)
            else:
                cli.cli.main(args, standalone_mode=False)
    run_id = json.loads(Path("data/work/registered.json").read_text())["run_id"]
    TRAINED_AND_LOGGED[key] = (trained[-1].model_dump(mode="json"), logged_params(run_id))


def runs() -> list[tuple[str, str, str]]:
    """(method, recipe, task): every registered method on a classification task, and `auto` there (its teacher check
    does work only then); the setfit recipe wherever it applies (not with an online selector: LLKD); every method that
    handles seq2seq on a word-problem task."""
    from distill.methods.base import Method
    from distill.methods.registry import METHODS

    out = [(m, "finetune", "toy") for m in METHODS] + [("auto", "finetune", "toy")]  # auto: the teacher check runs
    out += [(m, "setfit", "toy") for m, method in METHODS.items() if method.selector is Method.selector]
    return out + [(m, "finetune", "sums") for m, method in METHODS.items() if "seq2seq" in method.kinds]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory, tiny_student, tiny_llm):
    """Every stage run under every method (fake LLM, tiny student): the params each one read."""
    import conftest

    tmp = tmp_path_factory.mktemp("contract")
    task = conftest.make_toy_task(tmp)
    sums = conftest.make_toy_seq2seq(tmp)  # a seq2seq task: the causal-LM student's keys are read there
    backend = conftest.FakeBackend()
    mp = pytest.MonkeyPatch()
    # The real build_backend reads the teacher's identity (local: backend, model; openai: all six): so does the fake.
    identity = ("backend", "model", "base_url", "api", "prefix_as", "score_via")
    mp.setattr("distill.teachers.build_backend", lambda params: [getattr(params, k) for k in identity] and backend)
    reads: dict[str, set[str]] = {}
    try:
        for method, recipe, name in runs():
            work = tmp / f"{method}-{recipe}-{name}"
            work.mkdir()
            mp.chdir(work)
            (work / "data" / "tasks").mkdir(parents=True)  # where register resolves `method: auto` (no --task-dir)
            (work / "data" / "tasks" / name).symlink_to(sums if name == "sums" else task)
            params = Params.model_validate(
                yaml.safe_load(
                    write_params(
                        work / "params.yaml",
                        task=name,
                        method=method,
                        generate={"n_per_label": 6, "min_words": 3},
                        train={
                            "model": str(tiny_student),
                            "epochs": 1,
                            "batch_size": 8,
                            "min_steps": 0,
                            "recipe": recipe,
                            "setfit_iterations": 1,
                            "max_length": 32,
                            "lm_model": str(tiny_llm),
                            "lm_max_length": 64,
                        },
                        gold={
                            "iterations": [{"i": 1, "prev": 0}],
                            "train_per_iter": 4,
                            "val_per_iter": 4,
                            "refresh_epochs": 1,
                            "drop_top_energy": 0.25,
                            "loss": "sce" if recipe == "finetune" else "ce",
                        },  # every branch a stage can take, so every read is seen
                        s3={
                            "rounds": [{"i": 1, "prev": 0}],
                            "seed_per_label": 3,
                            "n_rationales": 2,
                            "max_extrapolations": 3,
                            "check_extrapolations": True,
                            "error_fraction": 0.95,
                        },  # mine ~all of the tiny validation: errors to check
                        llkd={"pool_size": 12, "prior_model": "student"},
                        evaluate={"teacher_max_examples": 6},
                    ).read_text()
                )
            )
            run_all_stages(params, sums if name == "sums" else task, reads, (method, recipe, name), mp)
    finally:
        mp.undo()
    return reads


def test_mlflow_shows_what_the_student_trained_with(recorded):
    """For every method (and the setfit recipe, and a seq2seq task): the run's MLflow params `train.*` are the config
    the train stage trained with, after the method's and the task kind's overrides (resolved.py), and params.yaml's
    own value sits beside each overridden one under `yaml.`."""
    assert len(TRAINED_AND_LOGGED) == len(runs())
    for key, (trained, logged) in TRAINED_AND_LOGGED.items():
        shown = {k.removeprefix("train."): v for k, v in logged.items() if k.startswith("train.")}
        assert shown == {k: "null" if v is None else str(v) for k, v in trained.items()}, key
    llkd = TRAINED_AND_LOGGED[("llkd", "finetune", "toy")][1]
    assert (llkd["train.head_init"], llkd["yaml.train.head_init"]) == ("random", "probe")  # LLKD's random head
    sums = TRAINED_AND_LOGGED[("zerogen", "finetune", "sums")][1]
    assert sums["train.lr"] == sums["train.lm_lr"] and sums["yaml.train.lr"] == "5e-05"  # the causal LM's rate


def declared(stage: dict) -> set[str]:
    return {p for p in stage.get("params", []) if isinstance(p, str)}


def covers(decl: set[str], key: str) -> bool:
    return key in decl or key.split(".")[0] in decl


def test_declared_params_are_exactly_what_each_stage_reads(recorded):
    runtime = runtime_keys()
    stages = dvc_stages()
    assert sorted(recorded) == sorted(stages)
    problems = []
    for name in stages:
        decl, reads = declared(stages[name]), recorded[name] - runtime
        problems += [
            f"{name}: reads {k} but dvc.yaml does not declare it" for k in sorted(reads) if not covers(decl, k)
        ]
        for d in sorted(decl):
            if d in runtime or any(k.startswith(d + ".") for k in runtime if "." not in d and k.split(".")[0] == d):
                problems.append(
                    f"{name}: declares {d}, which holds runtime knobs ({', '.join(sorted(k for k in runtime if k.startswith(d)))})"
                )
            elif not any(k == d or k.startswith(d + ".") for k in reads):
                problems.append(f"{name}: declares {d} but never reads it")
    assert problems == [], "\n".join(problems)


def imports_of(path: Path) -> set[Path]:
    """distill source files a module imports (distill.architecture.imports: at module level or inside functions, not
    under `if TYPE_CHECKING:`). Importing methods/registry.py imports every registered method's method.py (by name,
    with importlib)."""
    from distill import architecture
    from distill.methods.registry import NAMES

    found = {architecture.SRC / rel for rel in architecture.imports(path)}
    if architecture.SRC / "methods" / "registry.py" in found:
        found |= {architecture.SRC / "methods" / n / "method.py" for n in NAMES}
    return found


# Plumbing every stage uses; what it could change is already a dependency (params.yaml, data/work/task.yaml): the
# params models (config.py, sections.py, each method's params.py) only validate what dvc.yaml declares, and
# secrets.py only runs on a params error (it takes a pasted key out again): none changes an output. A package's
# __init__.py is glue: not a dependency itself, but what it imports is followed. config.py's imports are not (it
# builds the params model from every method's params.py through the registry: validation, not a stage's work).
PLUMBING = {
    "core/io.py",
    "config.py",
    "core/sections.py",
    "cli.py",
    "cli_common.py",
    "core/tasks.py",
    "core/secrets.py",
    "__init__.py",
    "stages/__init__.py",
}


def plumbing(rel: str) -> bool:
    return rel in PLUMBING or rel.endswith("/__init__.py") or re.fullmatch(r"methods/\w+/params\.py", rel) is not None


def stage_closure(stage: dict) -> set[str]:
    """The source files a dvc.yaml stage runs: its command's stage module and what that imports, plumbing aside."""
    src = REPO / "src" / "distill"
    # the shared stages' commands are in cli.py, each method's in its folder's cli.py
    cli = "\n".join(p.read_text() for p in [src / "cli.py", *sorted((src / "methods").glob("*/cli.py"))])
    command = stage["cmd"].split()[1]
    block = cli[
        cli.index(f'"{command}"') if f'"{command}"' in cli else cli.index(f"def {command.replace('-', '_')}(") :
    ]
    package, module = re.search(r"from distill\.(stages|methods\.\w+) import (\w+)", block).groups()
    todo, closure, seen = [src.joinpath(*package.split("."), f"{module}.py")], set(), set()
    while todo:
        f = todo.pop()
        rel = f.relative_to(src).as_posix()
        if rel in closure or rel in seen:
            continue
        seen.add(rel)
        if not plumbing(rel):
            closure.add(rel)
        if rel != "config.py":
            todo += imports_of(f)
    return closure


METHOD_JSON = "data/work/method.json"  # resolve_method's output: the method that runs and a hash of its code


def test_declared_source_deps_cover_each_stage_modules_imports():
    """Each source file a stage runs is a dependency: itself or its folder, or, for methods/ code, data/work/method.json
    (the running method's folder and the shared methods/ files, hashed: see the next test)."""
    problems = []
    for name, stage in dvc_stages().items():
        deps = [d.removeprefix("src/distill/") for d in stage.get("deps", []) if d.startswith("src/")]
        hashed = METHOD_JSON in stage.get("deps", [])
        problems += [
            f"{name}: runs {rel} but does not depend on it"
            for rel in sorted(stage_closure(stage))
            if not any(rel == d or rel.startswith(d + "/") for d in deps)
            and not (hashed and rel.startswith("methods/"))
        ]
    assert problems == [], "\n".join(problems)


def test_no_stage_needs_a_task_yaml_and_llm_stages_come_after_check_task():
    """A task folder without task.yaml runs under DVC; every stage that calls the teacher runs after check_task."""
    stages = dvc_stages()
    assert not [
        n
        for n, st in stages.items()
        for d in st.get("deps", [])
        if d.endswith("/task.yaml") and d.startswith("data/tasks")
    ]
    llm = [n for n, st in stages.items() if any(d == "src/distill/teachers" for d in st.get("deps", []))]
    assert set(llm) >= {"generate", "gold_iter", "s3_seed", "s3_round", "llkd_label", "evaluate"}
    assert all("data/work/task.yaml" in stages[n]["deps"] for n in llm)


def test_a_bad_test_split_stops_the_first_llm_stage_before_any_call(tmp_path, toy_task, fake_backend, monkeypatch):
    from distill.config import load_params
    from distill.core.io import DistillError
    from distill.methods.zerogen import generate
    from distill.methods.zerogen import prompts

    monkeypatch.chdir(tmp_path)
    params = load_params(
        write_params(tmp_path / "params.yaml", task="toy", method="zerogen", generate={"n_per_label": 4})
    )
    prompts.run(params, str(toy_task), "w/prompts.jsonl")
    (toy_task / "test.jsonl").write_text('{"text": "fine", "label": "positive"}\n{"text": "bad", "label": "neutral"}\n')
    with pytest.raises(DistillError, match=r"test\.jsonl:2: unknown label 'neutral'"):
        generate.run(params, str(toy_task), "w/prompts.jsonl", "w/generated.jsonl", "m/generate.json")
    assert fake_backend.calls == 0 and not (tmp_path / "w/generated.jsonl").exists()


@pytest.mark.parametrize("path", ["dvc_plots/index.html", ".cache/llm.sqlite", "mlflow.db", "mlartifacts/1/x"])
def test_what_the_tools_write_in_the_workspace_is_git_ignored(path):
    import subprocess

    assert subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO).returncode == 0, f"{path} is not git-ignored"


def test_a_stage_that_reads_method_depends_on_the_auto_rule():
    """The CLI resolves `method: auto` (methods/auto.py) for every stage: a new rule must re-run what it changes. A
    stage depends on the rule itself (the stages that resolve: teacher_check, resolve_method) or on method.json,
    which resolve_method writes from it."""
    rule = REPO / "src" / "distill" / "methods" / "auto.py"
    for name, stage in dvc_stages().items():
        if "method" in (stage.get("params") or []):
            deps = [REPO / d for d in stage.get("deps", []) if d.startswith("src/")]
            assert METHOD_JSON in stage["deps"] or any(rule == d or d in rule.parents for d in deps), name
    resolver = dvc_stages()["resolve_method"]
    assert "src/distill/methods" in resolver["deps"] and resolver["outs"] == [METHOD_JSON]


def test_no_import_circle_between_packages():
    """Imports, function-level ones included, form no cycle that crosses a package: GOLD's energy lives in
    distill/core/energy.py, below methods/ and students/ (methods/gold.py <-> students/model.py was one, and made GOLD's
    file a dependency of every stage). A package's __init__ and its own modules may import each other."""
    src = REPO / "src" / "distill"
    graph = {f: imports_of(f) - {f} for f in src.rglob("*.py")}
    seen, cycles = set(), []

    def walk(f, path):
        for g in graph[f]:
            if g in path:
                loop = path[path.index(g) :]
                if len({p.parent for p in loop}) > 1:
                    cycles.append(" -> ".join(p.relative_to(src).as_posix() for p in loop + [g]))
            elif g not in seen:
                walk(g, path + [g])
        seen.add(f)

    for f in sorted(graph):
        if f not in seen:
            walk(f, [f])
    assert cycles == []

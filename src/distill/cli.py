"""The `distill` command: one thin sub-command per DVC stage. dvc.yaml calls these with its paths."""

from __future__ import annotations

import os
import sys

import click

# Offline and quiet by default: no hub lookups, no telemetry (a user can still override each one).
for _k, _v in {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "DVC_NO_ANALYTICS": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "TRANSFORMERS_VERBOSITY": "error",
}.items():
    os.environ.setdefault(_k, _v)

from distill.cli_common import PARAMS, TASK  # noqa: E402 - after the environment defaults above
from distill.cli_common import stage_params as _params  # noqa: E402


@click.group(help="distill: LLM -> small task model, as DVC stages. See README.md and `dvc dag`.")
def cli() -> None:
    from distill.core.memory import keep_freed_memory

    keep_freed_memory()  # every stage: large tensors' pages are reused instead of faulted in again (memory.py)


@cli.command(
    "check-task", help="Read and check every split of the task folder; write its resolved spec (task.yaml or inferred)."
)
@PARAMS
@TASK
@click.option("--out", required=True, help="resolved task spec (YAML) to write")
@click.option("--metrics", "metrics_out", required=True, help="rows per split (JSON) to write")
def check_task(params_path, task_dir, out, metrics_out):
    from distill.config import load_params
    from distill.stages import check_task as stage

    # validated as written (`method: auto` stays): checking needs no method, and the auto rule reads the task first
    stage.run(load_params(params_path), task_dir, out, metrics_out)


@cli.command(
    "teacher-check",
    help="method: auto only: does the teacher add anything to the fewshot labels, on validation? Write the verdict.",
)
@PARAMS
@TASK
@click.option("--out", required=True, help="the verdict (JSON) to write; methods/auto.py reads it")
def teacher_check(params_path, task_dir, out):
    from distill.config import load_params
    from distill.stages import teacher_check as stage

    stage.run(load_params(params_path), task_dir, out)  # as written: `method: auto` is what it decides


@cli.command(
    "resolve-method",
    help="Which method runs (`method: auto` resolved after the teacher check) and a hash of its code: the shared "
    "stages depend on that file, not on every method's folder.",
)
@PARAMS
@TASK
@click.option("--out", required=True, help="the resolved method and its code hash (JSON) to write")
def resolve_method(params_path, task_dir, out):
    from distill.config import load_params
    from distill.stages import resolve_method as stage

    stage.run(load_params(params_path), task_dir, out)  # as written: resolving `auto` is what it does


@cli.command(help="Assemble the selected method's final training set and its per-iteration curve.")
@PARAMS
@TASK
@click.option(
    "--input",
    "inputs",
    multiple=True,
    metavar="METHOD=PATH",
    help="a method's stage output (repeat for each method: dvc.yaml passes them all)",
)
@click.option("--out", required=True, help="training JSONL to write")
@click.option("--metrics", "metrics_out", required=True, help="data metrics JSON to write")
@click.option("--plot", "plot_out", required=True, help="per-iteration TSV to write")
def assemble(params_path, task_dir, inputs, out, metrics_out, plot_out):
    from distill.stages import assemble as stage

    pairs = dict(i.split("=", 1) for i in inputs if "=" in i)
    if len(pairs) != len(inputs):
        raise click.BadParameter("each --input is METHOD=PATH", param_hint="--input")
    stage.run(_params(params_path, task_dir), task_dir, pairs, out, metrics_out, plot_out)


@cli.command(help="Fine-tune the student on generated data; save it with its tokenizer.")
@PARAMS
@TASK
@click.option("--data", "data_path", required=True, help="training JSONL (generated data)")
@click.option("--model-out", required=True, help="folder to save the student to")
@click.option("--metrics", "metrics_out", required=True, help="stage metrics JSON to write")
@click.option("--history", "history_out", default=None, help="per-epoch history JSON to write")
def train(params_path, task_dir, data_path, model_out, metrics_out, history_out):
    from distill.stages import train as stage

    stage.run(_params(params_path, task_dir), task_dir, data_path, model_out, metrics_out, history_out)


@cli.command(help="Accuracy and macro-F1 on test.jsonl of the student and of the teacher (few-shot).")
@PARAMS
@TASK
@click.option("--model", "model_dir", required=True, help="trained student folder")
@click.option("--metrics", "metrics_out", required=True, help="metrics JSON to write")
@click.option("--plot", "plot_out", required=True, help="confusion-matrix data (JSON) to write")
def evaluate(params_path, task_dir, model_dir, metrics_out, plot_out):
    from distill.stages import evaluate as stage

    stage.run(_params(params_path, task_dir), task_dir, model_dir, metrics_out, plot_out)


@cli.command(help="Log the run to MLflow, register the student, move @champion/@challenger.")
@PARAMS
@click.option("--data", "data_path", required=True, help="the generated data the student was trained on (hashed)")
@click.option("--model", "model_dir", required=True, help="trained student folder")
@click.option("--metrics", "metrics_paths", multiple=True, required=True, help="metrics JSON files to log (repeatable)")
@click.option("--out", required=True, help="registration record JSON to write")
@click.option("--curve", default=None, help="per-iteration TSV to log as a step curve")
@click.option("--history", default=None, help="per-epoch training history JSON to log as a step curve")
def register(params_path, data_path, model_dir, metrics_paths, out, curve, history):
    from distill.stages import register as stage

    from distill.config import load_params

    stage.run(
        _params(params_path),
        data_path,
        model_dir,
        list(metrics_paths),
        out,
        curve,
        history,
        written=load_params(params_path),
    )


@cli.command(help="Print the last pipeline's test accuracies and where to look next.")
@click.option("--metrics", "metrics_path", default="metrics/metrics.json", show_default=True)
@click.option("--registered", default="data/work/registered.json", show_default=True)
@click.option("--check", "check_path", default="data/work/teacher_check.json", show_default=True)
def summary(metrics_path, registered, check_path):
    from distill.core.io import read_json

    m = read_json(metrics_path)
    try:
        r = read_json(registered)
    except Exception:  # summary of a pipeline that registered nothing (yet)
        r = {}
    if r.get("method"):
        click.echo(f"method: {r['method']}")
    try:  # `method: auto` and the teacher check's verdict (stages/teacher_check.py)
        check = read_json(check_path)
    except Exception:
        check = {}
    if check.get("checked") and not check["teacher_adds"]:
        click.echo(
            f"method: auto chose the few-shot reference (`labelled` on fewshot.jsonl): the teacher adds nothing here, "
            f"{check['reason']}"
        )
    f1 = f"macro-F1 {m['student_macro_f1']:.4f}, " if "student_macro_f1" in m else ""  # a seq2seq task has no labels
    click.echo(f"student test accuracy: {m['student_accuracy']:.4f}  ({f1}{m['n_test']} rows)")
    if m["teacher_n_test"] < m["n_test"] and "student_accuracy_teacher_rows" in m:
        click.echo(f"  on the teacher's rows: {m['student_accuracy_teacher_rows']:.4f}  ({m['teacher_n_test']} rows)")
    if "labeller_accuracy" in m:  # what the student was trained to imitate (LLKD: teacher x few-shot prior)
        click.echo(f"labeller test accuracy: {m['labeller_accuracy']:.4f}  ({m['teacher_n_test']} rows)")
    click.echo(f"teacher test accuracy: {m['teacher_accuracy']:.4f}  (few-shot, {m['teacher_n_test']} rows)")
    if "val_labeller_accuracy" in m:
        click.echo(
            f"validation: student {m['val_student_accuracy']:.4f}, labeller {m['val_labeller_accuracy']:.4f}, "
            f"teacher {m['val_teacher_accuracy']:.4f}  ({m['val_n']} rows; the labeller and teacher on "
            f"{m['val_teacher_n']})"
        )
    if "val_teacher_gain" in m:  # the labeller against what the fewshot labels alone give, on validation
        from distill.kinds.base import teacher_check

        click.echo(f"teacher check (validation){teacher_check(m).removeprefix(';')}")
    if r:
        click.echo(f"registered: models:/{r['model_name']}@{r['alias']} (version {r['version']})")
    click.echo("compare experiments:  dvc exp show")
    click.echo("browse runs:          mlflow ui --backend-store-uri sqlite:///mlflow.db")


@cli.command(
    help="Compare methods across tasks and seeds: one named `dvc exp run --queue` per combination, run by "
    "`dvc queue start -j N`, watched, then reports/compare.md (table), compare.png (bars) and compare.json."
)
@PARAMS
@click.option("--tasks", required=True, help="comma-separated task folders under data/tasks/, e.g. sst2,ag_news")
@click.option(
    "--methods",
    default="zerogen,gold,s3,llkd,setfit",
    show_default=True,
    help="comma-separated methods; setfit = the reference: SetFit on the task's fewshot.jsonl alone, no teacher "
    "(single-text tasks)",
)
@click.option(
    "--seeds", default="3", show_default=True, help="a count (3 = seeds 0,1,2) or a list (0,7,42; a single seed: 7,)"
)
@click.option(
    "--jobs",
    "-j",
    default=1,
    show_default=True,
    type=click.IntRange(1),
    help="experiments run at once (dvc queue start -j)",
)
@click.option(
    "--set-param", "-S", "overrides", multiple=True, help="key=value applied to every run, as in dvc exp run -S"
)
@click.option(
    "--name",
    default=None,
    help="comparison name: experiment-name prefix and MLflow tag [default: cmp-<time>]; the same name again resumes",
)
@click.option("--out", default="reports", show_default=True, help="folder for compare.md / .png / .json")
@click.option("--poll", default=15.0, show_default=True, help="seconds between progress checks")
@click.option("--no-wait", is_flag=True, help="queue and start, then return (run again with the same --name to report)")
def compare(params_path, tasks, methods, seeds, jobs, overrides, name, out, poll, no_wait):
    import time
    from pathlib import Path

    from distill import compare as cmp

    comparison = cmp.Comparison(
        root=Path.cwd(),
        name=name or time.strftime("cmp-%Y%m%d-%H%M%S"),
        tasks=cmp.parse_list(tasks, "--tasks"),
        methods=cmp.parse_list(methods, "--methods"),
        seeds=cmp.parse_seeds(seeds),
        overrides=cmp.parse_overrides(overrides),
        jobs=jobs,
        out=Path(out),
        command=" ".join(["distill", *sys.argv[1:]]),
        log=click.echo,
    )
    runs = cmp.run(comparison, Path(params_path), poll, wait=not no_wait)
    failed = [r for r in runs or [] if r["state"] != "success"]
    if failed:
        raise click.ClickException(f"{len(failed)} of {len(runs)} runs failed (listed in {Path(out) / 'compare.md'})")


@cli.command(
    "add-task",
    help="Copy a task folder (test/validation/fewshot/unlabeled JSONL) into data/tasks/<name>/, "
    "checked row by row, with a task.yaml to edit (inferred when the folder has none). Then: dvc exp run -S task=<name>",
)
@click.argument("src")
@click.option("--name", default=None, help="task name [default: the folder's name]")
@click.option(
    "--dest", default="data/tasks", show_default=True, help="where task folders live (dvc.yaml reads data/tasks/<task>)"
)
@click.option("--force", is_flag=True, help="replace an existing task folder of that name")
def add_task(src, name, dest, force):
    from distill.core.tasks import add_task as run

    out = run(src, dest, name, force)
    click.echo(f"added {out} ({out / 'task.yaml'}); run it with: dvc exp run -S task={out.name}")


@cli.command(help="Serve a local teacher over the OpenAI API (for teacher.backend: openai). Loopback only by default.")
@click.option(
    "--model",
    default="smollm2-135m-instruct",
    show_default=True,
    help="embedded model name, .gguf file or model folder",
)
@click.option("--name", default=None, help="model name clients ask for (teacher.model) [default: --model]")
@click.option("--host", default="127.0.0.1", show_default=True, help="address to listen on")
@click.option("--port", default=8000, show_default=True, type=int)
@click.option(
    "--batch-window-ms",
    default=5.0,
    show_default=True,
    help="how long concurrent requests are collected into one forward pass",
)
@click.option("--max-batch", default=32, show_default=True, type=int, help="rows per forward pass at most")
@click.option(
    "--max-tokens",
    default=4096,
    show_default=True,
    type=click.IntRange(1),
    help="largest max_tokens a request may ask (400 above it)",
)
@click.option("--device", default="auto", show_default=True, help="auto (the GPU when torch sees one) | cpu | cuda[:N]")
@click.option(
    "--dtype", default="auto", show_default=True, type=click.Choice(["auto", "float32", "bfloat16", "float16"])
)
@click.option(
    "--request-timeout",
    default=300.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="seconds a request may take, waiting included (504 after)",
)
def serve(model, name, host, port, batch_window_ms, max_batch, max_tokens, device, dtype, request_timeout):
    from distill.teachers.serve import serve as run

    run(model, name, host, port, batch_window_ms, max_batch, max_tokens, device, dtype, request_timeout)


@cli.command(
    help="Print the validated params; with --resolved, the config a run of this task really uses (method "
    "`auto` made concrete, the method's and the task kind's training settings), as MLflow logs it."
)
@PARAMS
@click.option("--task-dir", default=None, help="task folder (default: data/tasks/<task>)")
@click.option("--resolved", is_flag=True, help="apply every override the run applies; changed keys get a comment")
def config(params_path, task_dir, resolved):
    import yaml

    from distill.config import load_params
    from distill.resolved import changed, resolved_params
    from distill.core.tasks import load_task

    written = load_params(params_path)
    params, notes = written, {}
    if resolved:
        params = _params(params_path, task_dir)
        params = resolved_params(
            params, load_task(task_dir or os.path.join("data", "tasks", params.task), quiet=True).spec
        )
        notes = changed(written, params)
    lines = yaml.safe_dump(params.model_dump(mode="json"), sort_keys=False).splitlines()
    click.echo("\n".join(_annotate(lines, notes)))


def _annotate(lines: list[str], notes: dict) -> list[str]:
    """`  head_init: random` -> `  head_init: random  # params.yaml: probe` for each key the run changed."""
    out, stack = [], []
    for line in lines:
        indent = (len(line) - len(line.lstrip(" "))) // 2
        key = line.strip().split(":", 1)[0]
        stack[indent:] = [key]
        dotted = ".".join(stack)
        out.append(f"{line}  # params.yaml: {notes[dotted][0]}" if dotted in notes and not line.endswith(":") else line)
    return out


def _add_method_commands() -> None:
    """Each method's own stage commands (`distill gold-iter`, ...) come from its folder (methods/<name>/cli.py)."""
    import importlib

    from distill.methods.registry import METHODS

    for method in METHODS.values():
        for command in importlib.import_module(method.commands).COMMANDS if method.commands else []:
            cli.add_command(command)


_add_method_commands()


def _add_product_commands() -> None:
    """The student as a product: label a file with it, export it (deploy/)."""
    from distill.deploy import export, predict

    cli.add_command(predict.command)
    cli.add_command(export.command)


_add_product_commands()


def main() -> None:
    from distill.core.io import DistillError

    try:
        cli.main(standalone_mode=False)
    except DistillError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)


if __name__ == "__main__":
    main()

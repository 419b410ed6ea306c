"""The `distill` command: one thin sub-command per DVC stage. dvc.yaml calls these with its paths."""
from __future__ import annotations

import os
import sys

import click

# Offline and quiet by default: no hub lookups, no telemetry (a user can still override each one).
for _k, _v in {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "MLFLOW_DISABLE_TELEMETRY": "true",
               "DO_NOT_TRACK": "true", "DVC_NO_ANALYTICS": "1", "TOKENIZERS_PARALLELISM": "false",
               "TRANSFORMERS_VERBOSITY": "error"}.items():
    os.environ.setdefault(_k, _v)

PARAMS = click.option("--params", "params_path", default="params.yaml", show_default=True, help="params file (validated)")
TASK = click.option("--task-dir", required=True, help="task folder: task.yaml + JSONL splits")


def _params(path: str):
    from distill.config import load_params

    return load_params(path)


@click.group(help="distill: LLM -> small task model, as DVC stages. See README.md and `dvc dag`.")
def cli() -> None:
    pass


@cli.command(help="Write one generation request per sample (label-conditioned prompts, stable ids and seeds).")
@PARAMS
@TASK
@click.option("--out", required=True, help="prompts JSONL to write")
def prompts(params_path, task_dir, out):
    from distill.stages import prompts as stage

    stage.run(_params(params_path), task_dir, out)


@cli.command(help="Sample the teacher for every request; cut, filter and label-check the samples.")
@PARAMS
@TASK
@click.option("--prompts", "prompts_path", required=True, help="prompts JSONL from the prompts stage")
@click.option("--out", required=True, help="generated JSONL to write")
@click.option("--metrics", "metrics_out", required=True, help="stage metrics JSON to write")
def generate(params_path, task_dir, prompts_path, out, metrics_out):
    from distill.stages import generate as stage

    stage.run(_params(params_path), task_dir, prompts_path, out, metrics_out)


@cli.command(help="Fine-tune the student on generated data; save it with its tokenizer.")
@PARAMS
@TASK
@click.option("--data", "data_path", required=True, help="training JSONL (generated data)")
@click.option("--model-out", required=True, help="folder to save the student to")
@click.option("--metrics", "metrics_out", required=True, help="stage metrics JSON to write")
def train(params_path, task_dir, data_path, model_out, metrics_out):
    from distill.stages import train as stage

    stage.run(_params(params_path), task_dir, data_path, model_out, metrics_out)


@cli.command(help="Accuracy and macro-F1 on test.jsonl of the student and of the teacher (few-shot).")
@PARAMS
@TASK
@click.option("--model", "model_dir", required=True, help="trained student folder")
@click.option("--metrics", "metrics_out", required=True, help="metrics JSON to write")
@click.option("--plot", "plot_out", required=True, help="confusion-matrix data (JSON) to write")
def evaluate(params_path, task_dir, model_dir, metrics_out, plot_out):
    from distill.stages import evaluate as stage

    stage.run(_params(params_path), task_dir, model_dir, metrics_out, plot_out)


@cli.command(help="Log the run to MLflow, register the student, move @champion/@challenger.")
@PARAMS
@click.option("--data", "data_path", required=True, help="the generated data the student was trained on (hashed)")
@click.option("--model", "model_dir", required=True, help="trained student folder")
@click.option("--metrics", "metrics_paths", multiple=True, required=True, help="metrics JSON files to log (repeatable)")
@click.option("--out", required=True, help="registration record JSON to write")
def register(params_path, data_path, model_dir, metrics_paths, out):
    from distill.stages import register as stage

    stage.run(_params(params_path), data_path, model_dir, list(metrics_paths), out)


@cli.command(help="Print the last pipeline's test accuracies and where to look next.")
@click.option("--metrics", "metrics_path", default="metrics/metrics.json", show_default=True)
@click.option("--registered", default="data/work/registered.json", show_default=True)
def summary(metrics_path, registered):
    from distill.io import read_json

    m = read_json(metrics_path)
    click.echo(f"student test accuracy: {m['student_accuracy']:.4f}  (macro-F1 {m['student_macro_f1']:.4f}, {m['n_test']} rows)")
    click.echo(f"teacher test accuracy: {m['teacher_accuracy']:.4f}  (few-shot, {m['teacher_n_test']} rows)")
    try:
        r = read_json(registered)
        click.echo(f"registered: models:/{r['model_name']}@{r['alias']} (version {r['version']})")
    except Exception:
        pass
    click.echo("compare experiments:  dvc exp show")
    click.echo("browse runs:          mlflow ui --backend-store-uri sqlite:///mlflow.db")


def main() -> None:
    from distill.io import DistillError

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

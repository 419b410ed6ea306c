"""The student as an MLflow pyfunc model: `mlflow.pyfunc.load_model("models:/distill-sst2@champion").predict(frame)`.

The logged model carries the student folder as an artifact and this package as code, so it loads wherever
torch and transformers are installed, without distill itself. Its signature (`signature`) names the task's text
fields as string inputs and answers one row per input: `label`, its probability `score`, and `p_<label>` for every
label, flat scalar columns that `mlflow models serve` returns as plain JSON records. MLflow enforces the input
schema before `predict`, so the loaded pyfunc takes a DataFrame (or records) with the field columns; a bare list
of texts still works on the unwrapped model (`.unwrap_python_model().predict(None, texts)`).
"""

from __future__ import annotations

from typing import Any, Sequence

import mlflow.pyfunc


def prob_column(label: str) -> str:
    return f"p_{label}"


def signature(fields: Sequence[str], labels: Sequence[str]):
    """Inputs: the task's text fields (strings, all required); outputs: label, score and one p_<label> per label."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    outputs = [ColSpec("string", "label"), ColSpec("double", "score")]
    return ModelSignature(
        inputs=Schema([ColSpec("string", f) for f in fields]),
        outputs=Schema(outputs + [ColSpec("double", prob_column(l)) for l in labels]),
    )


def input_example(fields: Sequence[str], rows: Sequence[dict[str, Any]] = ()):
    """A DataFrame of the task's fields from `rows` (the first two with every field), or placeholder texts."""
    import pandas as pd

    picked = [r for r in rows if all(isinstance(r.get(f), str) for f in fields)][:2]
    picked = picked or [{f: f"an example {f}" for f in fields}]
    return pd.DataFrame({f: [r[f] for r in picked] for f in fields})


def bad_input(message: str):
    """The error a caller can fix: MLflow's scoring server answers it with 400 and this message (anything else is a
    400 saying only "unexpected error", with a traceback)."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

    return MlflowException(message, error_code=INVALID_PARAMETER_VALUE)


def _text(value, field: str, i: int) -> str:
    """One cell as text; a number is its digits, but a missing value or a list is an error, not the text 'nan' or
    "['a', 'b']" (MLflow makes `{"text": ["a", "b"]}` one row holding a list)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value == value:  # NaN != NaN
        return str(value)
    raise bad_input(f"row {i}: field '{field}' must be one text, got {type(value).__name__} {str(value)[:60]!r}")


def input_rows(model_input, fields: Sequence[str]) -> list[dict[str, str]]:
    """Texts as the student's rows: a DataFrame with the field columns (others ignored), one with unnamed columns
    (integer labels: a list of lists made a frame) taken in field order, or a list / Series of texts, of tuples
    (pair tasks) or of dicts."""
    import pandas as pd

    fields = list(fields)
    if isinstance(model_input, pd.DataFrame):
        if all(isinstance(c, str) for c in model_input.columns):
            missing = [f for f in fields if f not in model_input.columns]
            if missing:
                raise bad_input(
                    f"input is missing field(s) {missing}: expected columns {fields}, got {list(model_input.columns)}"
                )
            cols = fields
        else:
            if model_input.shape[1] < len(fields):
                raise bad_input(f"input has {model_input.shape[1]} unnamed column(s): expected columns {fields}")
            cols = list(model_input.columns[: len(fields)])
        items = [tuple(vals) for vals in model_input[cols].itertuples(index=False)]
    else:
        items = list(model_input.tolist() if hasattr(model_input, "tolist") else model_input)
    rows = []
    for i, x in enumerate(items):
        if isinstance(x, dict):
            missing = [f for f in fields if f not in x]
            if missing:
                raise bad_input(f"row {i} is missing field(s) {missing}: expected {fields}")
            x = tuple(x[f] for f in fields)
        elif not isinstance(x, (list, tuple)):
            x = (x,)
        if len(x) < len(fields):
            raise bad_input(f"row {i} has {len(x)} text(s): expected {fields}")
        rows.append({f: _text(v, f, i) for f, v in zip(fields, x)})
    return rows


class StudentModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        from distill.students.model import load_student

        self.student = load_student(context.artifacts["student"])

    def predict(self, context, model_input, params=None):  # no type hints: MLflow would read them as a signature
        """Texts (a list, a Series, or a DataFrame with the task's text columns) -> DataFrame(label, score, p_*)."""
        import pandas as pd

        rows = input_rows(model_input, self.student.fields)
        labels = self.student.labels
        if not rows:
            return pd.DataFrame(
                {
                    "label": pd.Series(dtype=str),
                    "score": pd.Series(dtype=float),
                    **{prob_column(l): pd.Series(dtype=float) for l in labels},
                }
            )
        probs = self.student.proba(rows)
        best = probs.argmax(-1)
        return pd.DataFrame(
            {
                "label": [labels[i] for i in best.tolist()],
                "score": probs.gather(1, best[:, None]).squeeze(1).tolist(),
                **{prob_column(l): probs[:, i].tolist() for i, l in enumerate(labels)},
            }
        )

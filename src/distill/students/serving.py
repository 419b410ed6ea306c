"""The student as an MLflow pyfunc model: `mlflow.pyfunc.load_model("models:/distill-sst2@champion").predict(texts)`.

The logged model carries the student folder as an artifact and this package as code, so it loads wherever
torch and transformers are installed, without distill itself.
"""
from __future__ import annotations


import mlflow.pyfunc


class StudentModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        from distill.students.model import load_student

        self.student = load_student(context.artifacts["student"])

    def predict(self, context, model_input, params=None):  # no type hints: MLflow would read them as a signature
        """Texts (a list, a Series, or a DataFrame with the task's text columns) -> DataFrame(label, score)."""
        import pandas as pd

        fields = self.student.fields
        if isinstance(model_input, pd.DataFrame):
            cols = fields if set(fields) <= set(model_input.columns) else list(model_input.columns[: len(fields)])
            rows = [dict(zip(fields, map(str, vals))) for vals in model_input[cols].itertuples(index=False)]
        else:
            items = list(model_input.tolist() if hasattr(model_input, "tolist") else model_input)
            rows = [dict(zip(fields, map(str, x))) if isinstance(x, (list, tuple)) else {fields[0]: str(x)} for x in items]
        probs = self.student.proba(rows)
        best = probs.argmax(-1)
        return pd.DataFrame({"label": [self.student.labels[i] for i in best.tolist()],
                             "score": probs.gather(1, best[:, None]).squeeze(1).tolist()})

"""`distill export MODEL --format onnx`: a classification student as one ONNX graph, optionally int8 as well.

The graph holds the whole student (encoder, pooling, normalisation, head, softmax): input_ids, attention_mask
(+ token_type_ids when the student's tokenizer gives them) -> logits and probs, with dynamic batch and sequence axes.
The output folder (default: `<student>-onnx`, or models/onnx for an MLflow URI) holds model.onnx, model.int8.onnx
(--int8), the tokenizer and distill.json; OnnxStudent runs it with onnxruntime + tokenizers alone (no torch).
An existing output folder is refused unless --force; the export is built aside and swapped in only when complete,
so a failed export never leaves half a folder nor destroys the previous one. With --check the export is compared
with the PyTorch student (export_check.json); fp32 agreeing on under 99% of rows exits 1, the export kept (its
distill.json and export_check.json say it failed) so that it can be inspected.
"""

from __future__ import annotations

import json
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import click

from distill.deploy.models import MODEL_FORMS, fetch_student, load_classifier, run_id_of, store_of
from distill.core.io import DistillError, atomic_dir, read_jsonl, sha256_file, write_json

FORMATS = ("onnx",)
DEFAULT_OPSET = 17  # LayerNormalization is one op from 17; the TorchScript exporter goes up to 20
FP32, INT8, META, CHECK = "model.onnx", "model.int8.onnx", "distill.json", "export_check.json"
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
OUTPUTS = ("logits", "probs")
MIN_AGREEMENT = 0.99  # fp32 must give the torch student's label on this share of --check rows
# Dynamic quantisation of the weights of MatMul (every Linear of the encoder) and Gather (the embedding tables),
# onnxruntime's default set: activations are quantised at run time, per batch. The head (a Gemm) stays fp32.
INT8_OPS = ("MatMul", "Gather")


# -- the source student -----------------------------------------------------------------------------
def folder_sha256(folder: Path) -> str:
    """One hash of a folder's files (relative paths and contents): which student an export came from."""
    from distill.core.io import sha256_text

    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return sha256_text(*(f"{p.relative_to(folder).as_posix()}:{sha256_file(p)}" for p in files))


# -- export -----------------------------------------------------------------------------------------
def export_onnx(student, path: Path, opset: int) -> list[str]:
    """Trace the student into `path`; returns the graph's input names."""
    import torch

    # Two rows of different lengths, so the traced batch has padding (the mask really is used) and both axes vary.
    rows = [{f: "a" for f in student.fields}, {f: "a somewhat longer example of the text" for f in student.fields}]
    batch = student.encode(rows)
    names = [k for k in INPUTS if k in batch]  # what Student.forward would pass: BERT has token_type_ids, MPNet not

    class Graph(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.student = student

        def forward(self, *tensors):
            logits = self.student(dict(zip(names, tensors)))
            return logits, logits.softmax(-1)

    graph = Graph().eval()
    axes = {**{k: {0: "batch", 1: "sequence"} for k in names}, **{k: {0: "batch"} for k in OUTPUTS}}
    # The TorchScript exporter (dynamo=False): for BERT and MPNet students it gives the same graph quality (both
    # within 6e-8 of torch on padded batches of other shapes, tried on MiniLM and MPNet) in a quarter of the time,
    # and needs neither onnxscript nor onnx-ir. It is deprecated upstream; torch is pinned, so it stays until a
    # deliberate upgrade (dynamo=True with dynamic_shapes then).
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # TracerWarnings on transformers' shape checks: both axes stay dynamic
        try:
            torch.onnx.export(
                graph,
                tuple(batch[k] for k in names),
                str(path),
                dynamo=False,
                input_names=names,
                output_names=list(OUTPUTS),
                dynamic_axes=axes,
                opset_version=opset,
            )
        except Exception as e:
            raise DistillError(f"ONNX export failed at opset {opset}: {str(e).splitlines()[0]}") from None
    return names


def quantize_int8(src: Path, dst: Path) -> None:
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    # Per-channel scales (one per output column): on an SST-2 MiniLM student int8 gave fp32's label on 98.5% of
    # validation rows, 97.5% with one scale per matrix. onnxruntime's advice to pre-process first (shape inference,
    # fusions) is silenced: it changed no probability there. It goes through logging.warning(), which would give the
    # root logger a stderr handler for good if it had none: a NullHandler stands in meanwhile.
    root, level, quiet = logging.getLogger(), logging.getLogger().level, logging.NullHandler()
    root.addHandler(quiet)
    root.setLevel(logging.ERROR)
    try:
        quantize_dynamic(src, dst, weight_type=QuantType.QInt8, per_channel=True, op_types_to_quantize=list(INT8_OPS))
    finally:
        root.removeHandler(quiet)
        root.setLevel(level)


def check_model(path: Path) -> int:
    """onnx.checker's full check (types and shapes too); returns the graph's opset."""
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as e:
        raise DistillError(f"{path.name}: onnx.checker: {str(e).splitlines()[0]}") from None
    return next(
        o.version for o in onnx.load(str(path), load_external_data=False).opset_import if o.domain in ("", "ai.onnx")
    )


def export(student, tmp: Path, opset: int, int8: bool, source: dict[str, Any]) -> dict[str, Any]:
    """Write the ONNX folder's files into `tmp`; returns its distill.json."""
    tok = student.tokenizer
    if not getattr(tok, "is_fast", False):
        raise DistillError("the student's tokenizer has no tokenizer.json (a fast tokenizer): OnnxStudent needs one")
    inputs = export_onnx(student, tmp / FP32, opset)
    opset = check_model(tmp / FP32)
    if int8:
        quantize_int8(tmp / FP32, tmp / INT8)
        check_model(tmp / INT8)
    tok.save_pretrained(tmp)
    import onnxruntime
    import torch

    meta = {
        "kind": "onnx",
        "task": student.task,
        "fields": student.fields,
        "labels": student.labels,
        "pooling": student.pooling,
        "normalize": student.normalize,
        "max_length": student.max_length,
        "opset": opset,
        "inputs": inputs,
        "outputs": list(OUTPUTS),
        "files": {"fp32": FP32, "int8": INT8 if int8 else None},
        "int8": {"method": "onnxruntime quantize_dynamic", "weights": "QInt8 per channel", "ops": list(INT8_OPS)}
        if int8
        else None,
        # what Student.encode asks of the same tokenizer, for the `tokenizers` library alone
        "tokenizer": {
            "pad_id": tok.pad_token_id,
            "pad_token": tok.pad_token,
            "padding_side": tok.padding_side,
            "truncation_side": tok.truncation_side,
        },
        "source": source,
        "exporter": f"torch.onnx TorchScript exporter (torch {torch.__version__})",
        "onnxruntime": onnxruntime.__version__,
    }
    (tmp / META).write_text(json.dumps(meta, indent=1))
    return meta


# -- the runtime ------------------------------------------------------------------------------------
class OnnxStudent:
    """An exported student under onnxruntime: `proba(rows, batch_size)` as Student.proba (a numpy array [N, K])."""

    def __init__(self, path: str | Path, int8: bool = False, threads: int = 0):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        path = Path(path)
        meta_path = path / META
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
        if meta.get("kind") != "onnx":
            raise DistillError(f"{path}: not an ONNX export (no {META} of kind onnx; `distill export` writes one)")
        file = meta["files"]["int8" if int8 else "fp32"]
        if not file:
            raise DistillError(f"{path}: exported without --int8 (no {INT8})")
        self.meta, self.labels, self.fields = meta, meta["labels"], meta["fields"]
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1  # 0: onnxruntime's choice (all cores)
        self.session = ort.InferenceSession(str(path / file), opts, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]
        t = meta["tokenizer"]
        # The same settings Student.encode passes per call: truncation to max_length (longest first for pairs) and
        # padding to each batch's longest row.
        self.tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        self.tokenizer.enable_truncation(meta["max_length"], strategy="longest_first", direction=t["truncation_side"])
        self.tokenizer.enable_padding(direction=t["padding_side"], pad_id=t["pad_id"], pad_token=t["pad_token"])

    def encode(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        import numpy as np

        texts = [r[self.fields[0]] if len(self.fields) == 1 else tuple(r[f] for f in self.fields) for r in rows]
        enc = self.tokenizer.encode_batch(texts)
        arrays = {
            "input_ids": [e.ids for e in enc],
            "attention_mask": [e.attention_mask for e in enc],
            "token_type_ids": [e.type_ids for e in enc],
        }
        return {k: np.asarray(arrays[k], dtype=np.int64) for k in self.inputs}

    def _run(self, output: str, rows: Sequence[Mapping[str, Any]], batch_size: int):
        import numpy as np

        out = np.empty((len(rows), len(self.labels)), dtype=np.float32)
        order = sorted(range(len(rows)), key=lambda i: sum(len(rows[i][f]) for f in self.fields))  # less padding
        for s in range(0, len(rows), batch_size):
            idx = order[s : s + batch_size]
            out[idx] = self.session.run([output], self.encode([rows[i] for i in idx]))[0]
        return out

    def logits(self, rows: Sequence[Mapping[str, Any]], batch_size: int = 64):
        return self._run("logits", rows, batch_size)

    def proba(self, rows: Sequence[Mapping[str, Any]], batch_size: int = 64):
        return self._run("probs", rows, batch_size)

    def predict(self, rows: Sequence[Mapping[str, Any]], batch_size: int = 64) -> list[str]:
        return [self.labels[i] for i in self.logits(rows, batch_size).argmax(-1).tolist()]


# -- the check --------------------------------------------------------------------------------------
def compare(
    labels: Sequence[str], gold: Sequence[str | None], probs: Mapping[str, Any], reference: str = "torch"
) -> dict[str, Any]:
    """Each model's accuracy on the labelled rows, and its agreement with `reference` (share of rows given the same
    label) and largest |probability difference| from it. `probs`: name -> [N, K] array-like, `reference` among them."""
    import numpy as np

    arrays = {name: np.asarray(p, dtype=np.float64) for name, p in probs.items()}
    ref = arrays[reference]
    labelled = [i for i, g in enumerate(gold) if g is not None]
    out: dict[str, Any] = {"rows": len(gold), "labelled": len(labelled), "reference": reference, "models": {}}
    for name, p in arrays.items():
        if p.shape != ref.shape:
            raise ValueError(f"{name}: probabilities of shape {p.shape}, {reference}'s are {ref.shape}")
        pred = p.argmax(-1)
        out["models"][name] = {
            "accuracy": sum(labels[pred[i]] == gold[i] for i in labelled) / len(labelled) if labelled else None,
            "agreement": float((pred == ref.argmax(-1)).mean()) if len(p) else None,
            "max_abs_prob_diff": float(np.abs(p - ref).max()) if len(p) else None,
        }
    return out


def table(report: Mapping[str, Any]) -> str:
    def num(v, fmt):
        return "-" if v is None else format(v, fmt)

    lines = [f"{'model':<10} {'accuracy':>8} {'agreement':>9} {'max|dp|':>8}"]
    for name, m in report["models"].items():
        ref = name == report["reference"]
        lines.append(
            f"{name:<10} {num(m['accuracy'], '.4f'):>8} {'-' if ref else num(m['agreement'], '.4f'):>9} "
            f"{'-' if ref else num(m['max_abs_prob_diff'], '.1e'):>8}"
        )
    return "\n".join(lines)


def run_check(
    student, folder: Path, rows: list[dict[str, Any]], int8: bool, threads: int, source: str
) -> dict[str, Any]:
    from distill.core.tasks import label_name

    gold = [label_name(r["label"]) if "label" in r else None for r in rows]
    for r, g in zip(rows, gold):
        if g is not None and g not in student.labels:
            raise DistillError(
                f"{source}:{r.get('_line', '?')}: label {r['label']!r} is not one of the student's "
                f"({', '.join(student.labels)})"
            )
    probs = {
        "torch": student.proba(rows, 64).numpy(),
        "onnx fp32": OnnxStudent(folder, threads=threads).proba(rows, 64),
    }
    if int8:
        probs["onnx int8"] = OnnxStudent(folder, int8=True, threads=threads).proba(rows, 64)
    report = compare(student.labels, gold, probs)
    fp32 = report["models"]["onnx fp32"]["agreement"]
    report.update(file=source, min_agreement=MIN_AGREEMENT, passed=fp32 is None or fp32 >= MIN_AGREEMENT)
    return report


# -- the command ------------------------------------------------------------------------------------
def default_out(model: str) -> Path:
    if model.startswith(("models:/", "runs:/")):
        return Path("models/onnx")
    path = Path(model)
    return path.with_name(f"{path.name}-onnx") if path.name not in ("", "..") else Path(f"{path.resolve()}-onnx")


@click.command(
    "export",
    help="Export a classification student to ONNX (one graph: tokens -> logits and label "
    f"probabilities), optionally int8 too. MODEL: {MODEL_FORMS}.",
)
@click.argument("model")
@click.option("--format", "fmt", default="onnx", show_default=True, help="export format (onnx)")
@click.option(
    "--int8", is_flag=True, help=f"also write {INT8}: dynamic int8 quantisation of the MatMul and embedding weights"
)
@click.option("--out", default=None, help="output folder [default: <student>-onnx; models/onnx for an MLflow URI]")
@click.option(
    "--force", is_flag=True, help="replace an existing output folder (swapped in only once the export is complete)"
)
@click.option(
    "--check",
    "check_path",
    default=None,
    help="JSONL rows (the student's fields + label): compare the export "
    f"with the PyTorch student, write {CHECK}; exit 1 if fp32 agrees on under {MIN_AGREEMENT:.0%} of rows",
)
@click.option("--opset", default=DEFAULT_OPSET, show_default=True, type=click.IntRange(14, 20), help="ONNX opset")
@click.option(
    "--threads", default=0, show_default=True, type=click.IntRange(0), help="onnxruntime threads for --check (0: all)"
)
@click.option("--log", "log_mlflow", is_flag=True, help="log the output folder to MODEL's MLflow run, under onnx/")
def command(model, fmt, int8, out, force, check_path, opset, threads, log_mlflow):
    if fmt not in FORMATS:
        raise DistillError(f"--format: '{fmt}' is not supported (one of: {', '.join(FORMATS)})")
    is_uri = model.startswith(("models:/", "runs:/"))
    if log_mlflow and not is_uri:
        raise DistillError(f"--log: MODEL '{model}' is a folder; --log needs an MLflow URI (the run to log to)")
    out_dir = Path(out) if out else default_out(model)
    if out_dir.exists() and not force:
        raise DistillError(f"{out_dir}: already exists (pass --force to replace it, or --out elsewhere)")
    with tempfile.TemporaryDirectory(prefix="distill-export-") as tmp:
        folder = fetch_student(model, Path(tmp), "distill export")
        if not is_uri and (out_dir.resolve() == folder.resolve() or out_dir.resolve() in folder.resolve().parents):
            raise DistillError(f"--out {out_dir}: would replace the student folder itself")
        run_id = run_id_of(model) if log_mlflow else None  # before the work: an unknown run fails fast
        student = load_classifier(folder, model, "distill export")
        rows = read_jsonl(check_path, required=student.fields) if check_path else None
        if rows == []:
            raise DistillError(f"{check_path}: no rows to check")
        source = {"model": model, "path": model if is_uri else str(folder.resolve()), "sha256": folder_sha256(folder)}
        start = time.perf_counter()
        with atomic_dir(out_dir) as work:
            meta = export(student, work, opset, int8, source)
            took = time.perf_counter() - start
            report = run_check(student, work, rows, int8, threads, check_path) if rows is not None else None
            if report is not None:
                write_json(work / CHECK, report)
                meta["check"] = {"file": check_path, "passed": report["passed"]}
                (work / META).write_text(json.dumps(meta, indent=1))
        click.echo(
            f"exported {model} -> {out_dir} in {took:.1f} s (opset {meta['opset']}; onnx.checker full check: ok)"
        )
        for name in (FP32, INT8) if int8 else (FP32,):
            click.echo(
                f"  {name:<16} {(out_dir / name).stat().st_size / 2**20:7.1f} MiB  "
                f"{' + '.join(meta['inputs'])} -> logits, probs"
            )
        if report is not None:
            click.echo(f"check on {check_path} ({report['rows']} rows, {report['labelled']} labelled), against torch:")
            click.echo(table(report))
        if run_id and (report is None or report["passed"]):  # a failed export is not logged
            _log(model, run_id, out_dir)
    if report is not None and not report["passed"]:
        raise click.ClickException(
            f"check failed: onnx fp32 gives torch's label on "
            f"{report['models']['onnx fp32']['agreement']:.2%} of rows (< {MIN_AGREEMENT:.0%}); "
            f"the export stays in {out_dir} for inspection ({CHECK})"
        )


def _log(model: str, run_id: str, out_dir: Path) -> None:
    from mlflow import MlflowClient

    from distill.tracking import store_lock

    with store_lock():  # every write to the store takes turns (tracking.py)
        MlflowClient(store_of(model)).log_artifacts(run_id, str(out_dir), artifact_path="onnx")
    click.echo(f"logged {out_dir} to MLflow run {run_id} under onnx/")

"""Small, careful file helpers: JSONL with file:line errors, atomic writes, content hashes.

Every stage writes through these helpers so that a killed or failing stage never leaves a
half-written output that DVC or the next stage could mistake for a result.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class DistillError(Exception):
    """An error the user can fix (bad input, bad params, unreachable teacher).

    The CLI prints it as one line and exits non-zero, without a traceback.
    """


def read_jsonl(path: str | Path, required: Iterable[str] = ()) -> list[dict[str, Any]]:
    """Read a JSON Lines file; every problem is reported as `file:line: what`."""
    path = Path(path)
    if not path.is_file():
        raise DistillError(f"{path}: file not found")
    rows = []
    required = list(required)
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DistillError(f"{path}:{lineno}: malformed JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise DistillError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
            for key in required:
                if not isinstance(row.get(key), str) or not row[key].strip():
                    raise DistillError(f"{path}:{lineno}: missing or empty field '{key}'")
            row["_line"] = lineno
            rows.append(row)
    return rows


def strip_private(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if not k.startswith("_")}


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it into place only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Like atomic_path, for a directory (a saved model): build it aside, then swap it in."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> int:
    n = 0
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(strip_private(row), ensure_ascii=False) + "\n")
            n += 1
    return n


def write_json(path: str | Path, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8")


def read_json(path: str | Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise DistillError(f"{path}: file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DistillError(f"{path}:{e.lineno}: malformed JSON ({e.msg})") from None


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_text(*parts: str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()


def first_error(e: ValidationError) -> str:
    """One line for a pydantic error: `dotted.field: message (got value)`."""
    err = e.errors()[0]
    loc = ".".join(str(p) for p in err["loc"]) or "(root)"
    shown = err["type"] not in ("missing", "extra_forbidden", "secret") and not isinstance(err.get("input"), dict)
    return f"{loc}: {err['msg']}" + (f" (got {err['input']!r})" if shown else "")


def load_yaml_model(path: str | Path, model: type[M]) -> M:
    """Read a YAML file into a strict pydantic model; every problem is one line naming file and field."""
    path = Path(path)
    if not path.is_file():
        raise DistillError(f"{path}: file not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise DistillError(f"{path}: invalid YAML ({' '.join(str(e).split())})") from None
    try:
        return model.model_validate(raw)
    except ValidationError as e:
        raise DistillError(f"{path}: {first_error(e)}") from None

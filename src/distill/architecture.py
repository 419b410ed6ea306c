"""The package's layers, read from its imports: what docs/architecture.md draws and tests/test_architecture.py holds.

Each source file belongs to one part (`part_of`); parts sit in layers (`LAYERS`, lowest first), and a module imports
only from its own layer or below (function-level imports included, `if TYPE_CHECKING:` ones not: they run nothing).
`python -m distill.architecture` rewrites the picture in docs/architecture.md from the code.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parent  # src/distill

# lowest first; a part's modules import parts of its own layer or of lower ones only
LAYERS: list[list[str]] = [
    ["core"],  # core/: io, params base, tasks, secrets, and the small pure helpers every layer uses
    ["prompting", "teachers"],  # prompts; the LLM backends
    ["students", "synthesis"],  # the student models and training; sampling and scoring with a teacher
    ["methods", "kinds"],  # each method's algorithm, params model and hooks (method.py), the registry; task kinds
    ["config", "resolved", "tracking"],  # params.yaml's model (built from the registry); the resolved config; MLflow
    ["stages", "method stages", "deploy"],  # the DVC stages (shared and each method's); predict, export, model card
    ["cli", "compare"],  # the command line; `distill compare`
]
STAGE_FILES = re.compile(r"methods/\w+/(stages|stage|start|prompts|generate)\.py")


def part_of(rel: str) -> str:
    """src/distill-relative path -> its part (a node of the picture)."""
    top = rel.split("/")[0].removesuffix(".py")
    if STAGE_FILES.fullmatch(rel):
        return "method stages"
    if top == "core" or rel == "__init__.py":
        return "core"
    if top in ("cli", "cli_common", "__main__") or re.fullmatch(r"methods/\w+/cli\.py", rel):  # commands
        return "cli"
    if top in ("compare", "compare_plan", "compare_queue", "report"):
        return "compare"
    if top == "architecture":
        return "cli"  # a tool over the code, like the command line
    return top


def layer_of(part: str) -> int:
    return next(i for i, parts in enumerate(LAYERS) if part in parts)


def imports(path: Path) -> set[str]:
    """src/distill-relative files a module imports (at module level or inside functions; not under TYPE_CHECKING)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = {
        id(n)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and ast.unparse(block.test) == "TYPE_CHECKING"
        for n in ast.walk(block)
    }
    found = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            if name.split(".")[0] != "distill":
                continue
            base = SRC.parent.joinpath(*name.split("."))
            for candidate in (base.with_suffix(".py"), base / "__init__.py"):
                if candidate.is_file():
                    found.add(candidate.relative_to(SRC).as_posix())
    return found


def edges() -> dict[tuple[str, str], list[str]]:
    """(importing part, imported part) -> the imports that make the edge (`file -> file`), parts differing."""
    out: dict[tuple[str, str], list[str]] = {}
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        for dep in sorted(imports(path)):
            a, b = part_of(rel), part_of(dep)
            if a != b:
                out.setdefault((a, b), []).append(f"{rel} -> {dep}")
    return out


def upward() -> list[str]:
    """Imports from a higher layer than the importer's: none, or the layers are not what LAYERS says."""
    return [
        f"{imp} ({a} imports {b})" for (a, b), found in edges().items() if layer_of(b) > layer_of(a) for imp in found
    ]


def mermaid() -> str:
    """The picture: one box per layer (highest on top), an arrow per part that imports another."""
    ids = {p: re.sub(r"\W", "_", p) for parts in LAYERS for p in parts}
    lines = ["```mermaid", "flowchart TB"]
    for i, parts in reversed(list(enumerate(LAYERS))):
        lines.append(f'  subgraph L{i}["layer {i}"]')
        lines += [f'    {ids[p]}["{p}"]' for p in parts]
        lines.append("  end")
    lines += [f"  {ids[a]} --> {ids[b]}" for a, b in sorted(edges())]
    return "\n".join(lines + ["```"])


BEGIN, END = "<!-- architecture:begin (python -m distill.architecture) -->", "<!-- architecture:end -->"


def render(doc: str) -> str:
    """`doc` with the picture between its markers made anew."""
    head, rest = doc.split(BEGIN, 1)
    return f"{head}{BEGIN}\n{mermaid()}\n{END}{rest.split(END, 1)[1]}"


def main() -> None:
    doc = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/architecture.md")
    doc.write_text(render(doc.read_text(encoding="utf-8")), encoding="utf-8")
    print(f"{doc}: the package picture rewritten from the imports")


if __name__ == "__main__":
    main()

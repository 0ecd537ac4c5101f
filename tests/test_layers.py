"""The package in layers: no import cycle, and every import points down the order below.

The graph is read from the source with ``ast`` (lazy imports inside functions and ``TYPE_CHECKING`` blocks
count: a reader has to hold them in mind too), as ``../shared/tools/import_graph.py`` reads it.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SHARED

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "hf_spam"
# lowest first: a module may import its own layer and the layers before it, never one after it
LAYERS = (
    "errors", "run_folder", "cli", "hub", "data", "models", "evaluation", "training", "frozen_features",
    "in_context", "serving", "arguments", "study", "commands",
)  # fmt: skip


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports (a package's ``__init__`` is the package itself)."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}

    def owner(dotted: str) -> str | None:
        while dotted and dotted not in modules:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges[name] = set()
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)] if node.level else []
                source = ".".join(base + ([node.module] if node.module else []))
                targets = [f"{source}.{alias.name}" for alias in node.names]
            else:
                continue
            for target in targets:
                found = owner(target)
                if found and found != name and not name.startswith(found + "."):
                    edges[name].add(found)
    return edges


def layer(module: str) -> int:
    """The rank of a module's layer: its top-level name under ``hf_spam`` (the package itself is last)."""
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 else len(LAYERS)


def cycle_through(edges: dict[str, set[str]], start: str) -> list[str] | None:
    """A path of imports from ``start`` back to itself, or None."""
    stack, seen = [(start, [start])], set()
    while stack:
        node, path = stack.pop()
        for nxt in edges[node]:
            if nxt == start:
                return [*path, start]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, [*path, nxt]))
    return None


def test_every_top_level_name_has_a_layer():
    names = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir() if p.suffix == ".py" or p.is_dir()}
    assert names - {"__init__", "__pycache__"} == set(LAYERS)


def test_no_import_cycle():
    edges = import_graph()
    cycles = [cycle for module in edges if (cycle := cycle_through(edges, module))]
    assert not cycles, f"import cycles: {cycles[:3]}"


def test_imports_only_point_down_the_layers():
    upward = sorted(
        f"{module} -> {target}"
        for module, targets in import_graph().items()
        for target in targets
        if layer(target) > layer(module)
    )
    assert not upward, f"imports that point up the layers {LAYERS}: {upward}"


def test_the_checker_finds_what_it_looks_for():
    """The check itself: a cycle and an upward import, planted in a copy of the graph, are found."""
    edges = {k: set(v) for k, v in import_graph().items()}
    edges["hf_spam.data.pipeline"].add("hf_spam.training.fine_tune")
    assert cycle_through(edges, "hf_spam.data.pipeline")
    assert layer("hf_spam.training.fine_tune") > layer("hf_spam.data.pipeline")


def test_the_shared_import_graph_tool_finds_no_cycle():
    tool = SHARED / "tools" / "import_graph.py"
    if not tool.is_file():
        pytest.skip(f"{tool} not here (the check above reads the same graph)")
    out = subprocess.run([sys.executable, str(tool), str(PACKAGE), "--check"], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-2000:]
    assert "0 cycle(s)" in out.stdout

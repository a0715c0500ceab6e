"""The math's modules form no import cycle (TYPE_CHECKING and function-level imports count too)."""
from __future__ import annotations

import ast
from pathlib import Path

import hf_labelsmooth.losses

LOSSES = Path(hf_labelsmooth.losses.__file__).parent


def _module(path: Path) -> str:
    parts = path.relative_to(LOSSES.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """Each module of `losses` -> the modules of `losses` it imports (a name imported from a package: its module)."""
    modules = {_module(p): p for p in LOSSES.rglob("*.py")}
    edges: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
                for alias in node.names:
                    edges[name].add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    return edges


def _reaches(edges: dict[str, set[str]], start: str, goal: str) -> bool:
    seen, todo = set(), [start]
    while todo:
        node = todo.pop()
        if node == goal:
            return True
        if node not in seen:
            seen.add(node)
            todo.extend(edges.get(node, ()))
    return False


def test_no_module_of_the_math_imports_one_that_imports_it_back() -> None:
    edges = _imports()
    assert "losses.registry" in edges["losses.ols"]  # the scan sees imports
    cycles = sorted((a, b) for a in edges for b in edges[a] if a != b and _reaches(edges, b, a)
                    and not a.startswith(b + "."))  # a package's __init__ importing its own modules is no cycle
    assert cycles == []

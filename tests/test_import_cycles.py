"""No two cserver modules import each other, directly or through others.

Every import counts, also one inside a function or under TYPE_CHECKING: a cycle hidden
that way still ties the two modules together and breaks as soon as one import moves.
"""

from __future__ import annotations

import ast
from pathlib import Path

from testkit.serverproc import ROOT

PACKAGE = ROOT / "cserver"
# handler <-> response: ServerContext is to move into a module of its own.
KNOWN: set[frozenset[str]] = set()


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """module -> the cserver modules it imports (a package's own submodules excepted)."""
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        is_package = path.name == "__init__.py"
        targets: set[str] = set()
        tree = ast.parse(path.read_text(), str(path))
        # Imports for type checkers only never run, so they cannot make a cycle at run time.
        typing_only = {
            id(inner)
            for block in ast.walk(tree)
            if isinstance(block, ast.If) and ast.unparse(block.test).endswith("TYPE_CHECKING")
            for inner in ast.walk(block)
        }
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                base = node.module
                if node.level:
                    anchor = name.split(".")
                    anchor = anchor if is_package else anchor[:-1]
                    base = ".".join([*anchor[: len(anchor) - node.level + 1], base])
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.add(sub if sub in files else base)
        # A package that imports its submodules is not a cycle with them.
        graph[name] = {t for t in targets if t in files and t != name}
        if is_package:
            graph[name] = {t for t in graph[name] if not t.startswith(name + ".")}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_sees_imports_inside_functions() -> None:
    graph = import_graph()
    # apps.py imports startup_errors only inside ready().
    assert "cserver.startup_errors" in graph["cserver.apps"]


def test_no_import_cycles() -> None:
    unexpected = [sorted(c) for c in cycles(import_graph()) if frozenset(c) not in KNOWN]
    assert unexpected == []

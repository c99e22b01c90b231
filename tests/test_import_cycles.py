"""No two cserver modules import each other, directly or through others, and the layers that
ARCHITECTURE.md draws import only downwards.

Every import counts for cycles, also one inside a function or under TYPE_CHECKING: a cycle
hidden that way still ties the two modules together and breaks as soon as one import moves.
"""

from __future__ import annotations

import ast
from pathlib import Path

from testkit.serverproc import ROOT

PACKAGE = ROOT / "cserver"
KNOWN: set[frozenset[str]] = set()

# ARCHITECTURE.md's layers, highest first: a module imports only from its own layer or lower.
LAYERS = [
    ("cserver.cli", "cserver.__main__", "cserver.management"),
    ("cserver.stack", "cserver.devrun", "cserver.probe"),
    ("cserver.reload",),
    ("cserver.diagnostics", "cserver.dbconn"),
    ("cserver.server",),
    ("cserver.config",),
    ("cserver.debug",),
    ("cserver.generation",),
    ("cserver.procutil",),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(typing: bool = False) -> dict[str, set[str]]:
    """module -> the cserver modules it imports (a package's own submodules excepted);
    typing: also the imports under TYPE_CHECKING."""
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
            if not typing
            and isinstance(block, ast.If)
            and ast.unparse(block.test).endswith("TYPE_CHECKING")
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
    graph = import_graph(typing=True)
    unexpected = [sorted(c) for c in cycles(graph) if frozenset(c) not in KNOWN]
    assert unexpected == []


def layer(module: str) -> int | None:
    """The index of module's layer in LAYERS (0 is the top); None for modules outside them."""
    for index, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return index
    return None


def test_layers_import_only_downwards() -> None:
    upward = [
        f"{module} -> {target}"
        for module, targets in sorted(import_graph(typing=True).items())
        for target in sorted(targets)
        if (mine := layer(module)) is not None
        and (theirs := layer(target)) is not None
        and theirs < mine
    ]
    assert upward == []
    # The check itself: the server package sits below the reloader.
    assert layer("cserver.server.pool") > layer("cserver.reload.supervisor")  # type: ignore[operator]

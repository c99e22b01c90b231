"""What the settings module in use says, read from its files without importing them.

"In use" is the module DJANGO_SETTINGS_MODULE names and the modules it imports from its own
project (`from .base import *`), in the order Python runs them: a sibling such as
settings/ci.py that nothing imports is never read, and a later assignment wins over an
earlier one, as it does at run time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

# from .base import *  /  from mysite.settings.base import *  /  from . import base
_FROM_IMPORT = re.compile(r"^\s*from\s+(\.*)([\w.]*)\s+import\s+(.+)$", re.M)
# os.environ["X"] / os.environ.get("X" / os.getenv("X" / env("X" / env.bool("X" / config("X"
_ENV_READ = re.compile(
    r"""(?P<call>(?:os\.)?environ\s*\[|(?:os\.)?environ\.get\s*\(|(?:os\.)?getenv\s*\(|"""
    r"""\benv(?:\.\w+)?\s*\(|\bconfig\s*\()\s*["'](?P<name>[A-Z][A-Z0-9_]*)["'](?P<rest>[^\n]*)"""
)


@dataclass(frozen=True)
class SettingsFile:
    """One file of the settings in use, relative to the project root, with its text."""

    path: str
    text: str


@dataclass(frozen=True)
class EnvRead:
    """An environment variable the settings read, and whether importing them needs it."""

    name: str
    required: bool
    where: str  # file:line


def module_file(root: Path, source_root: str, module: str) -> Path | None:
    """The file of a dotted module under root/source_root: NAME.py or NAME/__init__.py."""
    base = root / source_root / Path(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported_modules(module: str, is_package: bool, text: str) -> list[str]:
    """Dotted names of the modules text imports with `from X import ...`, resolved."""
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for dots, name, names in _FROM_IMPORT.findall(text):
        if dots:
            parts = package.split(".")
            up = len(dots) - 1
            if up >= len(parts):
                continue
            anchor = ".".join(parts[: len(parts) - up])
            target = f"{anchor}.{name}" if name else anchor
        else:
            target = name
        if not name and dots:  # from . import base, local
            for item in names.replace("(", " ").replace(")", " ").split(","):
                word = item.strip().split(" ")[0]
                if word.isidentifier():
                    found.append(f"{target}.{word}")
        else:
            found.append(target)
    return found


def settings_in_use(root: Path, source_root: str, module: str) -> list[SettingsFile]:
    """The module's file after the files it imports from the project, each once."""
    ordered: list[SettingsFile] = []
    seen: set[Path] = set()

    def visit(name: str) -> None:
        path = module_file(root, source_root, name)
        if path is None or path in seen:
            return  # a module of Django or a library: not the project's settings
        seen.add(path)
        text = path.read_text(encoding="utf-8", errors="replace")
        for imported in _imported_modules(name, path.name == "__init__.py", text):
            visit(imported)
        ordered.append(SettingsFile(path.relative_to(root).as_posix(), text))

    visit(module)
    return ordered


def _required(call: str, rest: str) -> bool:
    """Whether the read raises when the variable is unset."""
    if call.endswith("["):
        return True  # os.environ["X"]
    if "get" in call or "getenv" in call:
        return False
    # env("X") / env.str("X") / config("X"): required unless a default follows the name.
    return not rest.lstrip().startswith(",")


def environment_reads(files: list[SettingsFile]) -> list[EnvRead]:
    """Every variable the settings read, first occurrence each, required if any read is."""
    reads: dict[str, EnvRead] = {}
    for file in files:
        for number, line in enumerate(file.text.splitlines(), 1):
            if line.lstrip().startswith("#"):
                continue
            for match in _ENV_READ.finditer(line):
                name = match["name"]
                required = _required(match["call"].replace(" ", ""), match["rest"])
                if name not in reads:
                    reads[name] = EnvRead(name, required, f"{file.path}:{number}")
                elif required and not reads[name].required:
                    reads[name] = EnvRead(name, True, f"{file.path}:{number}")
    return list(reads.values())


def last_assignment(files: list[SettingsFile], name: str) -> tuple[str, str] | None:
    """(the last string literal assigned to NAME, file:line), as the settings end up."""
    found = None
    for file in files:
        for number, line in enumerate(file.text.splitlines(), 1):
            match = re.match(rf"\s*{name}\s*=\s*(.+)$", line)
            if match:
                literals = re.findall(r"""["']([^"']*)["']""", match.group(1))
                found = (literals[-1], f"{file.path}:{number}") if literals else None
    return found

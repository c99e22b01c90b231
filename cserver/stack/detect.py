"""What `cserver init` needs to know about a Django project, read from its files.

Nothing here imports the project: its dependencies need not be installed on the host. Every
finding carries where it came from, so `init` can say what it detected and why.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name

# Python lines cserver supports; requires-python picks the newest of them it allows.
SUPPORTED_PYTHON_LINES = ("3.10", "3.11", "3.12", "3.13")
OLDEST_PYTHON = (3, 10)
POSTGRES_DRIVERS = frozenset(
    {"psycopg", "psycopg-binary", "psycopg-c", "psycopg2", "psycopg2-binary"}
)
# Added to the image when the project names no PostgreSQL driver.
DEFAULT_DRIVER = "psycopg[binary]"
# Preferred first: a development requirements file usually includes the base one.
REQUIREMENTS_FILES = (
    "requirements-dev.txt",
    "requirements/dev.txt",
    "requirements/local.txt",
    "requirements/development.txt",
    "requirements.txt",
    "requirements/base.txt",
)
# Signs that the settings take their database from DATABASE_URL.
_READS_DATABASE_URL = re.compile(r"DATABASE_URL|dj_database_url\.(config|parse)\(|\benv\.db\(")
_SETTINGS_IN_MANAGE = re.compile(r"""DJANGO_SETTINGS_MODULE["']\s*,\s*["']([\w.]+)["']""")
_INCLUDE = re.compile(r"^\s*(?:-r|--requirement|-c|--constraint)[\s=]+(\S+)")
_FROM_PYTHON = re.compile(r"^FROM\s+(?:--\S+\s+)*python:(\d+\.\d+)", re.M | re.I)
_RELATIVE_DIR = re.compile(r"^[\w.-]+(/[\w.-]+)*$")

DepsKind = Literal["requirements", "pyproject", "uv", "cserver"]
Database = Literal["url", "cserver"]


class DetectError(Exception):
    """The project cannot be set up as found; the message is one line for the user."""


@dataclass(frozen=True)
class Deps:
    """How the image installs the project's dependencies."""

    kind: DepsKind
    files: tuple[str, ...]  # relative to the project root; the first is the one named
    has_driver: bool

    @property
    def label(self) -> str:
        """e.g. 'requirements.txt', 'uv.lock (uv export)'."""
        names = {"uv": "uv.lock (uv export)", "pyproject": "pyproject.toml [project].dependencies"}
        return names.get(self.kind, self.files[0] if self.files else "pyproject.toml")


@dataclass(frozen=True)
class Overrides:
    """Values the user gave on the command line; None means 'detect'."""

    settings: str | None = None
    deps: str | None = None
    python: str | None = None
    database: Database | None = None
    media_dir: str | None = None
    static_root: str | None = None


@dataclass(frozen=True)
class Project:
    """Everything the generated files depend on, each with where it was found."""

    root: Path
    name: str
    demo: bool
    settings_module: str
    source_root: str  # "" when the settings package sits at the root, else e.g. "src"
    deps: Deps
    python_line: str
    database: Database
    staticfiles: bool
    media_dir: str | None
    static_root: str | None
    sources: dict[str, str] = field(default_factory=dict)

    def report(self) -> list[str]:
        """One line per detected value, as `init` prints it."""
        driver = "" if self.deps.has_driver else f", plus {DEFAULT_DRIVER} (no PostgreSQL driver)"
        database = {
            "url": "DATABASE_URL, set by compose to the stack's PostgreSQL",
            "cserver": "CSERVER_DATABASE_URL: cserver replaces DATABASES['default'] in the "
            "commands it runs (the settings file is not changed)",
        }[self.database]
        static = (
            "served by runcserver (django.contrib.staticfiles)"
            if self.staticfiles
            else ("not served (django.contrib.staticfiles is not installed)")
        )
        media = f"{self.media_dir}/ on the volume 'media'" if self.media_dir else "none"
        rows = [
            ("settings", self.settings_module, "settings"),
            ("dependencies", self.deps.label + driver, "deps"),
            ("python", f"{self.python_line} (python:{self.python_line}-slim)", "python"),
            ("database", database, "database"),
            ("static files", static, "static"),
            ("media files", media, "media"),
        ]
        return [f"{name:<13} {value}   [{self.sources.get(key, '')}]" for name, value, key in rows]


def _read_toml(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise DetectError(f"cannot read {path}: {exc}") from None


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "", text.lower())
    return slug or "app"


def _settings_module(root: Path, wanted: str | None) -> tuple[str, str]:
    if wanted:
        if not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", wanted):
            raise DetectError(f"--settings {wanted!r} is not valid: expected a dotted module name")
        return wanted, "--settings"
    manage = root / "manage.py"
    if manage.is_file():
        match = _SETTINGS_IN_MANAGE.search(manage.read_text(encoding="utf-8", errors="replace"))
        if match:
            return match.group(1), "manage.py"
    found = sorted(
        p for pattern in ("*/settings.py", "src/*/settings.py") for p in root.glob(pattern)
    )
    if len(found) == 1:
        relative = found[0].relative_to(root).with_suffix("")
        parts = relative.parts[1:] if relative.parts[0] == "src" else relative.parts
        return ".".join(parts), f"the only settings.py ({found[0].relative_to(root)})"
    raise DetectError(
        f"cannot tell the settings module of {root}: no manage.py naming "
        "DJANGO_SETTINGS_MODULE; pass --settings PACKAGE.settings"
    )


def _settings_files(root: Path, module: str) -> tuple[str, list[Path]]:
    """(source root, the settings file and its siblings in a settings package)."""
    relative = Path(*module.split("."))
    for source_root in ("", "src"):
        base = root / source_root / relative
        if base.with_suffix(".py").is_file():
            main = base.with_suffix(".py")
            siblings = sorted(main.parent.glob("*.py")) if main.parent.name == "settings" else []
            return source_root, [main, *(p for p in siblings if p != main)]
        if (base / "__init__.py").is_file():
            return source_root, sorted(base.glob("*.py"))
    raise DetectError(
        f"settings module {module!r} not found in {root} or {root / 'src'}: "
        "pass --settings with the module that DJANGO_SETTINGS_MODULE names"
    )


def _requirement_names(lines: list[str]) -> set[str]:
    names: set[str] = set()
    for line in lines:
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", "-")):
            continue
        try:
            names.add(canonicalize_name(Requirement(line).name))
        except InvalidRequirement:
            continue
    return names


def _requirements_closure(root: Path, first: str) -> tuple[list[str], set[str]]:
    """The file, every file it includes (-r / -c), and the package names they list."""
    files: list[str] = []
    names: set[str] = set()
    pending = [first]
    while pending:
        name = pending.pop(0)
        if name in files:
            continue
        path = root / name
        if not path.is_file():
            raise DetectError(f"requirements file {name!r} not found in {root}")
        files.append(name)
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        names |= _requirement_names(lines)
        for line in lines:
            match = _INCLUDE.match(line)
            if match:
                included = (Path(name).parent / match.group(1)).as_posix()
                if included.startswith("../") or included.startswith("/"):
                    raise DetectError(f"{name} includes {match.group(1)!r}, outside the project")
                pending.append(included)
    return files, names


def _pyproject_names(pyproject: dict) -> set[str]:
    return _requirement_names(list(pyproject.get("project", {}).get("dependencies", [])))


def _deps(root: Path, wanted: str | None, pyproject: dict | None) -> tuple[Deps, str]:
    if wanted:
        choice, source = wanted, "--deps"
    elif (root / "uv.lock").is_file() and pyproject is not None:
        choice, source = "uv.lock", "uv.lock next to pyproject.toml"
    else:
        found = [name for name in REQUIREMENTS_FILES if (root / name).is_file()]
        if found:
            choice, source = found[0], f"{found[0]} found"
        elif pyproject is not None and "dependencies" in pyproject.get("project", {}):
            choice, source = "pyproject.toml", "pyproject.toml [project].dependencies"
        else:
            raise DetectError(
                f"no dependency list in {root}: expected requirements.txt, pyproject.toml "
                "with [project].dependencies, or uv.lock; pass --deps FILE"
            )
    if not (root / choice).is_file():
        raise DetectError(f"--deps {choice!r} is not a file in {root}")
    if choice.endswith("uv.lock") or choice.endswith("pyproject.toml"):
        if pyproject is None:
            raise DetectError(f"--deps {choice!r} needs pyproject.toml in {root}")
        names = _pyproject_names(pyproject)
        if choice.endswith("uv.lock"):
            return Deps("uv", ("pyproject.toml", "uv.lock"), bool(names & POSTGRES_DRIVERS)), source
        return Deps("pyproject", ("pyproject.toml",), bool(names & POSTGRES_DRIVERS)), source
    files, names = _requirements_closure(root, choice)
    return Deps("requirements", tuple(files), bool(names & POSTGRES_DRIVERS)), source


def check_python_line(line: str, source: str) -> str:
    """'3.12' from '3.12' or '3.12.4'; a one-line error for anything cserver cannot run on."""
    match = re.fullmatch(r"(\d+)\.(\d+)(\.\d+)?", line.strip())
    if not match:
        raise DetectError(f"{source} {line.strip()!r} is not valid: expected a version like 3.12")
    version = (int(match.group(1)), int(match.group(2)))
    if version < OLDEST_PYTHON:
        raise DetectError(
            f"{source} {line.strip()!r} is not valid: cserver needs Python 3.10 or newer"
        )
    return f"{version[0]}.{version[1]}"


def _python_line(root: Path, wanted: str | None, pyproject: dict | None) -> tuple[str, str]:
    if wanted:
        return check_python_line(wanted, "--python"), "--python"
    pinned = root / ".python-version"
    if pinned.is_file():
        first = (pinned.read_text(encoding="utf-8").split() or [""])[0]
        return check_python_line(first, ".python-version"), ".python-version"
    requires = (pyproject or {}).get("project", {}).get("requires-python")
    if requires:
        try:
            spec = SpecifierSet(requires)
        except InvalidSpecifier:
            raise DetectError(f"requires-python {requires!r} is not valid") from None
        allowed = [line for line in SUPPORTED_PYTHON_LINES if spec.contains(f"{line}.0")]
        if not allowed:
            raise DetectError(
                f"requires-python {requires!r} allows none of the Python lines cserver "
                f"supports ({', '.join(SUPPORTED_PYTHON_LINES)}); pass --python X.Y"
            )
        return allowed[-1], f"requires-python {requires!r}, newest supported line"
    dockerfile = root / "Dockerfile"
    if dockerfile.is_file():
        # A production image's base names the line the project already runs on.
        match = _FROM_PYTHON.search(dockerfile.read_text(encoding="utf-8", errors="replace"))
        if match:
            return check_python_line(match.group(1), "Dockerfile FROM"), "FROM in ./Dockerfile"
    host = f"{sys.version_info.major}.{sys.version_info.minor}"
    return host, "the Python running cserver"


def _assigned_dir(texts: list[str], name: str) -> str | None:
    """A relative directory assigned to settings.NAME (e.g. BASE_DIR / "media" -> media)."""
    for text in texts:
        for match in re.finditer(rf"^\s*{name}\s*=\s*(.+)$", text, re.M):
            literals = re.findall(r"""["']([^"']+)["']""", match.group(1))
            if literals and _RELATIVE_DIR.match(literals[-1].strip("/")):
                return literals[-1].strip("/")
    return None


def _checked_dir(value: str, flag: str) -> str | None:
    value = value.strip().strip("/")
    if not value:
        return None
    if not _RELATIVE_DIR.match(value) or ".." in value.split("/"):
        raise DetectError(f"{flag} {value!r} is not valid: expected a directory inside the project")
    return value


def is_cserver_checkout(root: Path, pyproject: dict | None) -> bool:
    """True for cserver's own source tree: `init` there writes the demo's stack."""
    name = (pyproject or {}).get("project", {}).get("name")
    return name == "cserver" and (root / "cserver" / "demo" / "settings.py").is_file()


def detect(root: Path, overrides: Overrides | None = None) -> Project:
    """Read the project at root; raise DetectError (one line) when something is missing."""
    wanted = overrides or Overrides()
    root = root.resolve()
    if not root.is_dir():
        raise DetectError(f"{root} is not a directory")
    pyproject = _read_toml(root / "pyproject.toml") if (root / "pyproject.toml").is_file() else None
    if is_cserver_checkout(root, pyproject):
        return _demo(root, pyproject)
    sources: dict[str, str] = {}
    module, sources["settings"] = _settings_module(root, wanted.settings)
    source_root, files = _settings_files(root, module)
    texts = [p.read_text(encoding="utf-8", errors="replace") for p in files]
    deps, sources["deps"] = _deps(root, wanted.deps, pyproject)
    line, sources["python"] = _python_line(root, wanted.python, pyproject)
    shown = files[0].relative_to(root).as_posix()
    if wanted.database:
        database, sources["database"] = wanted.database, "--database"
    elif any(_READS_DATABASE_URL.search(t) for t in texts):
        database, sources["database"] = "url", f"{shown} reads DATABASE_URL"
    else:
        database, sources["database"] = "cserver", f"{shown} does not read DATABASE_URL"
    staticfiles = any("django.contrib.staticfiles" in t for t in texts)
    sources["static"] = shown
    if wanted.media_dir is not None:
        media, sources["media"] = _checked_dir(wanted.media_dir, "--media-dir"), "--media-dir"
    else:
        media, sources["media"] = _assigned_dir(texts, "MEDIA_ROOT"), f"MEDIA_ROOT in {shown}"
    if wanted.static_root is not None:
        static_root = _checked_dir(wanted.static_root, "--static-root")
    else:
        static_root = _assigned_dir(texts, "STATIC_ROOT")
    name = (pyproject or {}).get("project", {}).get("name") or root.name
    return Project(
        root=root,
        name=_slug(name),
        demo=False,
        settings_module=module,
        source_root=source_root,
        deps=deps,
        python_line=line,
        database=database,
        staticfiles=staticfiles,
        media_dir=media,
        static_root=static_root,
        sources=sources,
    )


def _demo(root: Path, pyproject: dict | None) -> Project:
    """cserver's own checkout: the demo project, installed from source (no wheel)."""
    line, python_source = _python_line(root, None, pyproject)
    return Project(
        root=root,
        name="cserver",
        demo=True,
        settings_module="cserver.demo.settings",
        source_root="",
        deps=Deps("cserver", ("pyproject.toml",), True),
        python_line=line,
        database="url",
        staticfiles=True,
        media_dir=None,
        static_root=None,
        sources={
            "settings": "cserver's checkout: the demo",
            "deps": "pyproject.toml (cserver installed from source)",
            "python": python_source,
            "database": "the demo reads DATABASE_URL",
            "static": "cserver/demo/settings.py",
            "media": "the demo has none",
        },
    )

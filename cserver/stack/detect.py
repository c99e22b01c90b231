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

from packaging.specifiers import InvalidSpecifier, SpecifierSet

from cserver.config.side import SideProcess
from cserver.stack.deps import (
    DEFAULT_DRIVER,
    Deps,
    DetectError,
    find_deps,
    read_toml,
)
from cserver.stack.settings_scan import (
    EnvRead,
    SettingsFile,
    environment_reads,
    last_assignment,
    module_file,
    settings_in_use,
)

# Python lines cserver supports; requires-python picks the newest of them it allows.
SUPPORTED_PYTHON_LINES = ("3.10", "3.11", "3.12", "3.13")
OLDEST_PYTHON = (3, 10)
# Signs that the settings take their database from DATABASE_URL.
_READS_DATABASE_URL = re.compile(r"DATABASE_URL|dj_database_url\.(config|parse)\(|\benv\.db\(")
_SETTINGS_IN_MANAGE = re.compile(r"""DJANGO_SETTINGS_MODULE["']\s*,\s*["']([\w.]+)["']""")
_FROM_PYTHON = re.compile(r"^FROM\s+(?:--\S+\s+)*python:(\d+\.\d+)", re.M | re.I)
_RELATIVE_DIR = re.compile(r"^[\w.-]+(/[\w.-]+)*$")
# Fixture files `loaddata NAME` finds: APP/fixtures/NAME.json (also .yaml, .xml, compressed).
_FIXTURE = re.compile(r"^(?P<name>[\w-]+)\.(json|jsonl|yaml|yml|xml)(\.(gz|bz2|xz|lzma|zip))?$")
_NOT_PROJECT_DIRS = frozenset({".git", ".venv", "venv", "node_modules", ".tox", ".nox", "docker"})

Database = Literal["url", "cserver"]


@dataclass(frozen=True)
class Overrides:
    """Values the user gave on the command line; None means 'detect'."""

    settings: str | None = None
    deps: str | None = None
    python: str | None = None
    database: Database | None = None
    media_dir: str | None = None
    static_root: str | None = None
    bootstrap: str | None = None
    dev_deps: bool | None = None
    # Comma-separated kinds of side process (worker, beat, redis, assets) to force or leave out.
    with_sides: str | None = None
    without_sides: str | None = None


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
    media_dir: str | None  # relative to the project root, or absolute (/srv/media)
    static_root: str | None
    sources: dict[str, str] = field(default_factory=dict)
    env_reads: tuple[EnvRead, ...] = ()
    bootstrap: str | None = None
    dev_deps: bool = False
    # The stack's side processes (workers, beat, asset watchers) and whether it has Redis.
    side_processes: dict[str, SideProcess] = field(default_factory=dict)
    redis: bool = False
    # What init found of workers, beat, Redis and assets: one line each, evidence included.
    side_lines: tuple[str, ...] = ()
    side_origins: dict[str, str] = field(default_factory=dict)

    @property
    def media_mount(self) -> str | None:
        """Where the media volume is mounted in the container."""
        if not self.media_dir:
            return None
        return self.media_dir if self.media_dir.startswith("/") else f"/app/{self.media_dir}"

    def report(self) -> list[str]:
        """One line per detected value, as `init` prints it."""
        driver = "" if self.deps.has_driver else f", plus {DEFAULT_DRIVER} (no PostgreSQL driver)"
        database = {
            "url": "DATABASE_URL, set by compose to the stack's PostgreSQL",
            "cserver": "the stack's PostgreSQL, applied by cserver.project_settings",
        }[self.database]
        if not self.demo:
            # Every process of the image imports the settings through cserver's shim.
            database += " in every process (manage.py, workers, exec)"
        static = (
            "served by runcserver (django.contrib.staticfiles)"
            if self.staticfiles
            else ("not served (django.contrib.staticfiles is not installed)")
        )
        media = f"{self.media_mount} on the volume 'media'" if self.media_dir else "none"
        bootstrap = self.bootstrap or "none (CSERVER_BOOTSTRAP sets one)"
        rows = [
            ("settings", self.settings_module, "settings"),
            ("dependencies", self.deps.label + driver, "deps"),
            ("python", f"{self.python_line} (python:{self.python_line}-slim)", "python"),
            ("database", database, "database"),
            ("static files", static, "static"),
            ("media files", media, "media"),
            ("bootstrap", bootstrap, "bootstrap"),
        ]
        lines = [f"{name:<13} {value}   [{self.sources.get(key, '')}]" for name, value, key in rows]
        for read in self.env_reads:
            need = "needed" if read.required else "optional"
            lines.append(f"{'environment':<13} {read.name} ({need})   [{read.where}]")
        return lines + list(self.side_lines)


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


def _settings_files(root: Path, module: str) -> tuple[str, list[SettingsFile]]:
    """(source root, the files of the settings in use: the module and what it imports)."""
    for source_root in ("", "src"):
        if module_file(root, source_root, module) is not None:
            return source_root, settings_in_use(root, source_root, module)
    raise DetectError(
        f"settings module {module!r} not found in {root} or {root / 'src'}: "
        "pass --settings with the module that DJANGO_SETTINGS_MODULE names"
    )


def settings_paths(root: Path, module: str | None = None) -> tuple[str, list[Path]]:
    """(source root, the files of the settings in use) for module or the detected one."""
    name = module or _settings_module(root, None)[0]
    source_root, files = _settings_files(root, name)
    return source_root, [root / f.path for f in files]


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


def _assigned_dir(files: list[SettingsFile], name: str) -> tuple[str | None, str]:
    """(the directory the settings end up assigning to NAME, where), absolute paths kept.

    BASE_DIR / "media" gives media; "/home/app/media" stays absolute.
    """
    found = last_assignment(files, name)
    if found is None:
        return None, f"no {name} in the settings in use"
    value, where = found
    if value.startswith("/") and _RELATIVE_DIR.match(value.strip("/")):
        return value.rstrip("/"), f"{name} at {where}"
    if _RELATIVE_DIR.match(value.strip("/")):
        return value.strip("/"), f"{name} at {where}"
    return None, f"{name} at {where} is not a directory init can read"


def _checked_dir(value: str, flag: str) -> str | None:
    value = value.strip()
    absolute = value.startswith("/")
    value = value.strip("/")
    if not value:
        return None
    if not _RELATIVE_DIR.match(value) or ".." in value.split("/"):
        raise DetectError(
            f"{flag} {value!r} is not valid: expected a directory inside the project "
            "or an absolute path in the container"
        )
    return f"/{value}" if absolute else value


def fixture_names(root: Path) -> list[tuple[str, str]]:
    """(fixture name, file) for every fixture `loaddata` can find in the project's apps."""
    found: dict[str, str] = {}
    for path in sorted(root.rglob("fixtures/*")):
        relative = path.relative_to(root)
        if _NOT_PROJECT_DIRS.intersection(relative.parts) or not path.is_file():
            continue
        match = _FIXTURE.match(path.name)
        if match:
            found.setdefault(match["name"], relative.as_posix())
    return sorted(found.items())


def _bootstrap(root: Path, wanted: str | None) -> tuple[str | None, str]:
    if wanted is not None:
        return (wanted.strip() or None), "--bootstrap"
    fixtures = fixture_names(root)
    if not fixtures:
        return None, "no fixtures found"
    names = " ".join(name for name, _ in fixtures)
    files = ", ".join(path for _, path in fixtures)
    return f"python -m django loaddata {names}", f"fixtures: {files}"


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
    pyproject = read_toml(root / "pyproject.toml") if (root / "pyproject.toml").is_file() else None
    if is_cserver_checkout(root, pyproject):
        return _demo(root, pyproject)
    sources: dict[str, str] = {}
    module, sources["settings"] = _settings_module(root, wanted.settings)
    source_root, files = _settings_files(root, module)
    texts = [f.text for f in files]
    deps, sources["deps"] = find_deps(root, wanted.deps, pyproject)
    line, sources["python"] = _python_line(root, wanted.python, pyproject)
    shown = " + ".join(f.path for f in files)
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
        media, sources["media"] = _assigned_dir(files, "MEDIA_ROOT")
    if wanted.static_root is not None:
        static_root = _checked_dir(wanted.static_root, "--static-root")
    else:
        static_root, _ = _assigned_dir(files, "STATIC_ROOT")
    bootstrap, sources["bootstrap"] = _bootstrap(root, wanted.bootstrap)
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
        env_reads=tuple(environment_reads(files)),
        bootstrap=bootstrap,
        dev_deps=bool(wanted.dev_deps),
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
            "bootstrap": "the demo needs none",
        },
    )

"""The side processes a project runs, found in its files without importing them.

Celery: an app is a `Celery(` call in the project's own modules; the settings (CELERY_*),
the requirements or the lock file only say that one is expected. Beat: django_celery_beat
in the settings, CELERY_BEAT_SCHEDULE, or a `beat_schedule` next to the app. Redis: a
redis:// or rediss:// URL, Django's RedisCache, django-redis or channels_redis in the
settings. Assets: a package.json script called watch, dev or build, in that order.

Each finding carries its evidence (file:line) so that init and doctor can say why they
generated a service, and each problem is one line naming what was found, what was expected
and the setting that fixes it.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from cserver.config.side import SideProcess

KINDS = ("worker", "beat", "redis", "assets")
NPM_SCRIPTS = ("watch", "dev", "build")
_CELERY_CALL = re.compile(r"^[^#\n]*\bCelery\s*\(", re.M)
_CELERY_SETTING = re.compile(r"^\s*(CELERY_\w+)\s*=", re.M)
_CELERY_REQUIREMENT = re.compile(r"^\s*[\"']?celery\b", re.M | re.I)
_REDIS_SIGNS = re.compile(
    r"rediss?://[^\s\"']*|django\.core\.cache\.backends\.redis\.RedisCache|django_redis|"
    r"channels_redis"
)
_BEAT_SIGNS = re.compile(r"django_celery_beat|CELERY_BEAT_SCHEDULE|\bbeat_schedule\b")
_LOCAL_REDIS = re.compile(r"rediss?://(?:[^@/\s\"']*@)?(?:localhost|127\.0\.0\.1|\[::1\])\b")
# esbuild --outdir=x / --outfile x/app.js, tailwind -o x/app.css, webpack --output-path x
_OUTPUT_OPTION = re.compile(
    r"(?:^|\s)(?:-o|--output|--outdir|--outfile|--output-path|--out-dir)(?:=|\s+)([^\s&|;]+)"
)
_ENV_READ = re.compile(r"\benviron\b|\bgetenv\s*\(|\benv(?:\.\w+)?\s*\(|\bconfig\s*\(")
_SKIPPED = frozenset({"node_modules", "__pycache__", "site-packages", "static", "media", "docker"})
MAX_FILES = 5000


class SidesError(ValueError):
    """What the user asked for cannot be generated; one line for the user."""


@dataclass(frozen=True)
class Finding:
    """One side process (or Redis) found, with the evidence, or a problem to report."""

    kind: str
    evidence: str
    side: SideProcess | None = None
    problem: str | None = None

    def line(self) -> str:
        if self.problem:
            return f"{'problem':<13} {self.problem}"
        if self.side is None:
            what = "the stack's redis service, its URL in the variables the settings read"
        else:
            what = f"`{self.side.command}`"
            notes = ["restarts on code changes"] if self.side.reload else []
            notes += [f"waits for {need}" for need in self.side.needs]
            if self.side.image == "node":
                notes.append("Node.js image")
            if self.side.output:
                notes.append(f"writes {self.side.output}, which web serves")
            what += f" ({'; '.join(notes)})" if notes else ""
        return f"{self.kind:<13} {what}   [{self.evidence}]"


def _python_files(root: Path) -> list[Path]:
    found = []
    for current, dirs, files in os.walk(root):
        dirs[:] = sorted(
            d
            for d in dirs
            if not d.startswith(".")
            and d not in _SKIPPED
            and not (Path(current) / d / "pyvenv.cfg").exists()
        )
        found += [Path(current) / f for f in sorted(files) if f.endswith(".py")]
        if len(found) >= MAX_FILES:
            break
    return found


def _first_match(path: Path, root: Path, pattern: re.Pattern[str]) -> tuple[str, str] | None:
    """(file:line, matched text) of the first match of pattern in the file."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    match = pattern.search(text)
    if not match:
        return None
    number = text.count("\n", 0, match.start()) + 1
    return f"{path.relative_to(root).as_posix()}:{number}", match.group(0).strip()


def _app_name(path: Path, root: Path, source_root: str) -> str:
    """What `celery -A` takes for the module holding the app: proj/celery.py -> proj."""
    base = root / source_root if source_root else root
    try:
        parts = list(path.relative_to(base).with_suffix("").parts)
    except ValueError:
        parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] in ("celery", "__init__") and len(parts) > 1:
        parts = parts[:-1]  # Celery looks for PACKAGE.celery itself
    return ".".join(parts)


def _celery_expected(root: Path, settings_files: list[Path]) -> str | None:
    """Where the project says it uses Celery, without an app being found (file:line)."""
    for path in settings_files:
        hit = _first_match(path, root, _CELERY_SETTING)
        if hit:
            return f"{hit[0]} sets {hit[1].split('=')[0].strip()}"
    for name in ("requirements.txt", "requirements/base.txt", "pyproject.toml", "uv.lock"):
        hit = _first_match(root / name, root, _CELERY_REQUIREMENT)
        if hit:
            return f"{hit[0]} lists celery"
    return None


def _celery(root: Path, source_root: str, settings_files: list[Path]) -> list[Finding]:
    app = None
    for path in _python_files(root):
        hit = _first_match(path, root, _CELERY_CALL)
        if hit:
            app = (path, hit[0])
            break
    if app is None:
        expected = _celery_expected(root, settings_files)
        if not expected:
            return []
        problem = (
            f"{expected}, but no Celery app (`Celery(...)`) was found in the project: no "
            "worker generated; declare one in CSERVER_SIDE_PROCESSES, e.g. "
            '{"worker": "celery -A PROJECT worker -l info"}'
        )
        return [Finding("worker", expected, problem=problem)]
    path, where = app
    name = _app_name(path, root, source_root)
    texts = [path, *settings_files]
    redis = _redis(root, settings_files) is not None
    needs: tuple[str, ...] = ("redis",) if redis else ()
    worker = SideProcess(
        # A worker restarts on every code change, so its stop and start are the edit loop:
        # the prefork pool takes 1.5-2.6 s to stop when idle, the thread pool 0.2 s (still
        # one task per core at once), and without mingle a start does not wait a second for
        # neighbours to share revoked tasks with (a development stack has none). A project
        # that wants prefork declares its worker in CSERVER_SIDE_PROCESSES.
        command=f"celery -A {name} worker -l info --pool threads --without-mingle",
        reload=True,
        needs=needs,
        healthcheck=f"celery -A {name} inspect ping -d celery@$HOSTNAME",
    )
    found = [Finding("worker", f"{where} Celery app {name!r}", worker)]
    for text_path in texts:
        hit = _first_match(text_path, root, _BEAT_SIGNS)
        if hit:
            scheduler = (
                " --scheduler django_celery_beat.schedulers:DatabaseScheduler"
                if hit[1] == "django_celery_beat"
                else ""
            )
            # The schedule is code (settings, the app module): an edit restarts beat too.
            beat = SideProcess(
                command=f"celery -A {name} beat -l info{scheduler}",
                reload=True,
                needs=needs,
            )
            found.append(Finding("beat", f"{hit[0]} {hit[1]}", beat))
            break
    return found


def _redis(root: Path, settings_files: list[Path]) -> Finding | None:
    for path in settings_files:
        hit = _first_match(path, root, _REDIS_SIGNS)
        if hit:
            return Finding("redis", f"{hit[0]} {hit[1]}")
    return None


def local_broker_problems(root: Path, settings_files: list[Path]) -> list[Finding]:
    """A literal localhost Redis URL in the settings: inside a container it is the container."""
    problems = []
    for path in settings_files:
        hit = _first_match(path, root, _LOCAL_REDIS)
        if hit and _ENV_READ.search(_line_at(path, hit[0])):
            continue  # a default for the environment's value: the stack sets that
        if hit:
            problems.append(
                Finding(
                    "redis",
                    hit[0],
                    problem=(
                        f"{hit[0]} uses {hit[1]}, which inside a container is the container "
                        "itself, not the stack's redis: read it from the environment "
                        "(os.environ.get('REDIS_URL', ...)) so the stack can set "
                        "redis://redis:6379/0"
                    ),
                )
            )
    return problems


def _line_at(path: Path, where: str) -> str:
    number = int(where.rpartition(":")[2])
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return lines[number - 1] if number <= len(lines) else ""


def _assets(root: Path) -> list[Finding]:
    path = root / "package.json"
    if not path.is_file():
        return []
    try:
        scripts = json.loads(path.read_text(encoding="utf-8")).get("scripts") or {}
    except (OSError, ValueError, AttributeError):
        return [Finding("assets", "package.json", problem="package.json is not valid JSON")]
    name = next((s for s in NPM_SCRIPTS if isinstance(scripts.get(s), str)), None)
    if name is None:
        return []
    output = _output_dir(scripts[name])
    number = next(
        (i for i, line in enumerate(path.read_text().splitlines(), 1) if f'"{name}"' in line), 1
    )
    side = SideProcess(command=f"npm run {name}", image="node", output=output)
    return [Finding("assets", f"package.json:{number} script {name!r}", side)]


_NPM_RUN = re.compile(r"^\s*npm\s+run(?:-script)?\s+([\w:.-]+)")


def npm_script_problem(root: Path, name: str, command: str) -> str | None:
    """One line when command runs an npm script that package.json does not have."""
    match = _NPM_RUN.match(command)
    if not match:
        return None
    script = match.group(1)
    path = root / "package.json"
    try:
        scripts = json.loads(path.read_text(encoding="utf-8")).get("scripts") or {}
    except FileNotFoundError:
        return (
            f"side process {name!r} runs `{command}`, but there is no package.json in "
            f"{root}: fix its command in CSERVER_SIDE_PROCESSES"
        )
    except (OSError, ValueError, AttributeError):
        return f"side process {name!r} runs `{command}`, but package.json is not valid JSON"
    if script in scripts:
        return None
    have = ", ".join(sorted(scripts)) or "none"
    return (
        f"side process {name!r} runs `{command}`, but package.json has no script "
        f"{script!r} (it has: {have}): fix its command in CSERVER_SIDE_PROCESSES"
    )


def _output_dir(script: str) -> str | None:
    """The directory an npm script writes, from its -o / --outdir / --outfile option."""
    match = _OUTPUT_OPTION.search(script)
    if not match:
        return None
    target = match.group(1).strip("\"'").removeprefix("./")
    if Path(target).suffix:  # a file: its directory is what web serves
        target = str(Path(target).parent)
    if not re.fullmatch(r"[\w.-]+(/[\w.-]+)*", target) or target.startswith(".."):
        return None
    return target


def find_sides(root: Path, source_root: str, settings_files: list[Path]) -> list[Finding]:
    """Everything found: side processes, Redis and problems, in the order init prints them."""
    found = _celery(root, source_root, settings_files)
    redis = _redis(root, settings_files)
    if redis:
        found.append(redis)
        found += local_broker_problems(root, settings_files)
    return found + _assets(root)


def chosen(findings: list[Finding], with_: set[str], without: set[str]) -> list[Finding]:
    """The findings init generates, after --with / --without; SidesError for a bad choice."""
    for flag, names in (("--with", with_), ("--without", without)):
        bad = names - set(KINDS)
        if bad:
            raise SidesError(f"{flag} {','.join(sorted(bad))}: expected some of {', '.join(KINDS)}")
    kinds = {f.kind for f in findings if not f.problem}
    for kind in sorted(with_ - kinds):
        problem = next((f.problem for f in findings if f.kind == kind and f.problem), None)
        hint = problem or f"no {kind} was found in the project"
        raise SidesError(f"--with {kind}: {hint}")
    return [f for f in findings if f.kind not in without]


def detected_sides(root: Path, settings_module: str | None = None) -> dict[str, SideProcess]:
    """The side processes `cserver dev` runs from what the project's files say."""
    from cserver.stack.detect import DetectError, settings_paths

    try:
        source_root, files = settings_paths(root, settings_module)
    except DetectError:
        source_root, files = "", []
    return {
        f.kind: f.side for f in find_sides(root, source_root, files) if f.side and not f.problem
    }

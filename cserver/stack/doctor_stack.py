"""Doctor's checks that ask Compose and the built image, not the host.

The settings a plain `python manage.py` sees inside the image are the ones that matter: a
process started by a worker or by `docker compose exec` must get the stack's database, not
the SQLite file of the settings. When the image is built, doctor runs manage.py in it (no
other service started) and prints what it sees; before that, it checks what it can read.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cserver.stack.doctor_findings import Finding, one_line

TIMEOUT = 120
# What a process of the image prints about its settings: one line, fields split by "|".
_SHOW_DATABASE = (
    "from django.conf import settings as s; d = s.DATABASES['default']; "
    "print('cserver-doctor|' + '|'.join(str(d.get(k) or '') for k in ('ENGINE', 'HOST', 'NAME')))"
)


@dataclass(frozen=True)
class ComposeView:
    """What `docker compose config` resolves for the web service."""

    image: str
    settings: str | None  # CSERVER_PROJECT_SETTINGS, or DJANGO_SETTINGS_MODULE (the demo)
    published: tuple[str, str] | None  # (host address, port)
    platform: str | None  # the service's `platform:` (linux/amd64), when compose sets one
    environment: dict[str, str]  # web's, with .env (env_file) and interpolation applied


def _compose(
    root: Path, environ: Mapping[str, str], args: list[str], what: str
) -> subprocess.CompletedProcess[str] | Finding:
    """`docker compose ARGS` in root, or a problem naming what failed to run."""
    try:
        return subprocess.run(
            ["docker", "compose", *args],
            cwd=root,
            env=dict(environ),
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Finding("problem", f"{what} failed: {one_line(exc)}")


def compose_view(root: Path, environ: Mapping[str, str]) -> ComposeView | Finding:
    """The resolved web service, or a problem saying why compose cannot resolve it."""
    proc = _compose(root, environ, ["config", "--format", "json"], "`docker compose config`")
    if isinstance(proc, Finding):
        return proc
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines() or ["no output"]
        return Finding("problem", f"compose.yaml does not resolve: {lines[-1]}")
    web: dict[str, Any] = json.loads(proc.stdout).get("services", {}).get("web", {})
    environment = web.get("environment") or {}
    settings = environment.get("CSERVER_PROJECT_SETTINGS") or environment.get(
        "DJANGO_SETTINGS_MODULE"
    )
    ports = web.get("ports") or []
    published = None
    if ports:
        published = (str(ports[0].get("host_ip") or "0.0.0.0"), str(ports[0].get("published")))
    values = {str(k): "" if v is None else str(v) for k, v in environment.items()}
    platform = str(web["platform"]) if web.get("platform") else None
    return ComposeView(str(web.get("image", "")), settings, published, platform, values)


def image_exists(image: str, environ: Mapping[str, str]) -> bool:
    """True when the engine has the image (built by `docker compose build`)."""
    try:
        proc = subprocess.run(
            ["docker", "image", "inspect", "--format", "{{.Id}}", image],
            env=dict(environ),
            capture_output=True,
            timeout=TIMEOUT,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


def check_inside_image(
    root: Path, view: ComposeView, environ: Mapping[str, str]
) -> Iterator[Finding]:
    """What a plain manage.py (or django) process in the image sees as its database."""
    manage = ["python", "manage.py", "shell", "-c", _SHOW_DATABASE]
    if not (root / "manage.py").is_file():
        manage = ["python", "-c", f"import django; django.setup(); {_SHOW_DATABASE}"]
    argv = ["run", "--rm", "--no-deps", "-T", "--entrypoint", "", "web", *manage]
    proc = _compose(root, environ, argv, "running manage.py in the image")
    if isinstance(proc, Finding):
        yield proc
        return
    shown = [line for line in proc.stdout.splitlines() if line.startswith("cserver-doctor|")]
    command = " ".join(manage[:3])
    if proc.returncode != 0 or not shown:
        errors = [line for line in proc.stderr.strip().splitlines() if line.strip()]
        detail = errors[-1] if errors else f"exit status {proc.returncode}"
        yield Finding(
            "problem",
            f"not ready: settings {view.settings} do not load in the image ({command}): {detail}",
        )
        return
    _, engine, host, name = [*shown[-1].split("|"), "", "", ""][:4]
    where = f"{engine} at {host or '(no host)'}, database {name}"
    if engine.endswith("postgresql") and host == "db":
        yield Finding("ok", f"in the image, `{command}` sees the stack's database: {where}")
    else:
        yield Finding(
            "problem",
            f"in the image, `{command}` sees {where}, not the stack's PostgreSQL at db: "
            "run cserver init again (DJANGO_SETTINGS_MODULE must be cserver.project_settings)",
        )


OVERRIDE_FILE = "compose.override.yaml"


def resolved_services(root: Path, environ: Mapping[str, str], files: list[str]) -> dict | Finding:
    """The services of files merged as Compose merges them (the first file's directory is the
    project's), or a problem saying why they do not resolve."""
    args = [arg for name in files for arg in ("-f", name)]
    proc = _compose(root, environ, [*args, "config", "--format", "json"], "docker compose config")
    if isinstance(proc, Finding):
        return proc
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines() or ["no output"]
        return Finding("problem", f"{' + '.join(files)} do not resolve together: {lines[-1]}")
    services: dict = json.loads(proc.stdout).get("services", {})
    return services


def check_override(root: Path, environ: Mapping[str, str]) -> Iterator[Finding]:
    """compose.override.yaml (the team's own additions) merges, and what it changes."""
    if not (root / OVERRIDE_FILE).is_file():
        return
    generated = resolved_services(root, environ, ["compose.yaml"])
    merged = resolved_services(root, environ, ["compose.yaml", OVERRIDE_FILE])
    for result in (generated, merged):
        if isinstance(result, Finding):
            yield result
            return
    assert isinstance(generated, dict) and isinstance(merged, dict)
    changes = 0
    for name, service in sorted(merged.items()):
        if name not in generated:
            yield Finding("note", f"{OVERRIDE_FILE} adds the service {name}")
            changes += 1
            continue
        for key in sorted(set(service) | set(generated[name])):
            if service.get(key) != generated[name].get(key):
                yield Finding("note", f"{OVERRIDE_FILE} changes {name}.{key}")
                changes += 1
    yield Finding("ok", f"{OVERRIDE_FILE} merges with compose.yaml ({changes} change(s))")

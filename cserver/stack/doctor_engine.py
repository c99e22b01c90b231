"""Doctor's view of the Docker engine: where it is, what it runs, what that means for the stack.

The engine may be this machine's (a unix socket, Docker Desktop's VM) or another machine's
(`DOCKER_HOST=ssh://...`, tcp with TLS, a `docker context`). Compose then builds images and
runs containers there: a port published on 127.0.0.1 is the *engine's* loopback, and a bind
mount names a path on the engine's disk. Everything here asks the docker CLI, so contexts
and DOCKER_HOST/DOCKER_TLS_VERIFY/DOCKER_CERT_PATH apply exactly as for `docker compose`.
"""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from cserver.stack.devcontainer import DEVCONTAINER_JSON, DevcontainerError, parse_jsonc
from cserver.stack.doctor_devcontainer import compose_files
from cserver.stack.doctor_findings import Finding, one_line
from cserver.stack.doctor_stack import OVERRIDE_FILE, ComposeView, resolved_services

TIMEOUT = 20
_LOOPBACK = {"localhost", "127.0.0.1", "::1", ""}
# `docker info` says x86_64/aarch64 where image platforms say amd64/arm64.
_ARCH_NAMES = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}


@dataclass(frozen=True)
class Endpoint:
    url: str  # unix:///var/run/docker.sock, tcp://host:2376, ssh://user@host
    context: str  # the docker context in use ("default" when DOCKER_HOST decides)
    source: str  # what chose it, as doctor prints it
    tls: bool

    @property
    def scheme(self) -> str:
        return urlsplit(self.url).scheme

    @property
    def host(self) -> str:
        """The machine part: user@host for ssh, the host name for tcp, "" for a socket."""
        parts = urlsplit(self.url)
        if self.scheme == "ssh":
            return f"{parts.username}@{parts.hostname}" if parts.username else str(parts.hostname)
        return parts.hostname or ""


@dataclass(frozen=True)
class Engine:
    version: str
    api: str
    name: str  # the engine machine's host name (`docker info`'s Name)
    platform: str  # linux/amd64


def _docker(environ: Mapping[str, str], *args: str) -> str:
    """The docker CLI's stdout, or RuntimeError with its last line of stderr."""
    try:
        proc = subprocess.run(
            ["docker", *args],
            env=dict(environ),
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RuntimeError(one_line(exc)) from None
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"]
        raise RuntimeError(lines[-1])
    return proc.stdout.strip()


def endpoint(environ: Mapping[str, str]) -> Endpoint:
    """The engine the docker CLI (and so Compose) talks to, and what chose it."""
    tls = environ.get("DOCKER_TLS_VERIFY", "") not in ("", "0")
    if environ.get("DOCKER_HOST"):
        return Endpoint(environ["DOCKER_HOST"], "default", "set by DOCKER_HOST", tls)
    context = environ.get("DOCKER_CONTEXT") or ""
    source = "set by DOCKER_CONTEXT" if context else "set by `docker context use`"
    try:
        context = context or _docker(environ, "context", "show")
        found = json.loads(_docker(environ, "context", "inspect", context))
        docker = found[0]["Endpoints"]["docker"]
        url = str(docker.get("Host") or "unix:///var/run/docker.sock")
        tls = tls or bool(found[0].get("TLSMaterial", {}).get("docker"))
    except (RuntimeError, ValueError, LookupError, TypeError):
        url = "unix:///var/run/docker.sock"
    context = context or "default"
    if context == "default" and not environ.get("DOCKER_CONTEXT"):
        source = "the default: no DOCKER_HOST, no context chosen"
    return Endpoint(url, context, source, tls)


def engine(environ: Mapping[str, str]) -> Engine:
    """What the engine says about itself; RuntimeError when it does not answer."""
    server = json.loads(_docker(environ, "version", "--format", "{{json .Server}}"))
    if not server:
        raise RuntimeError("no Docker engine answers")
    name = _docker(environ, "info", "--format", "{{.Name}}")
    arch = str(server.get("Arch", "?"))
    platform = f"{server.get('Os', '?')}/{_ARCH_NAMES.get(arch, arch)}"
    return Engine(
        str(server.get("Version", "?")), str(server.get("ApiVersion", "?")), name, platform
    )


def is_remote(where: Endpoint, facts: Engine) -> bool:
    """A socket is this machine's engine (Docker Desktop shares files and ports through its VM);
    over tcp or ssh it is remote unless the engine runs on this very host."""
    if where.scheme in ("unix", "npipe", "fd"):
        return False
    return facts.name != socket.gethostname()


def check_engine(environ: Mapping[str, str]) -> Iterator[Finding]:
    """The engine answers; where it is (endpoint, context, local or remote); its platform."""
    where = endpoint(environ)
    try:
        facts = engine(environ)
    except (RuntimeError, ValueError) as exc:
        yield Finding("problem", f"no Docker engine answers at {where.url}: {one_line(exc)}")
        return
    yield Finding("ok", f"Docker engine {facts.version} (API {facts.api})")
    secured = ", TLS verified" if where.tls else ""
    yield Finding("ok", f"endpoint {where.url} (context {where.context}, {where.source}{secured})")
    if is_remote(where, facts):
        yield Finding(
            "note",
            f"engine is remote: it runs on {facts.name!r}, not this machine "
            f"({socket.gethostname()!r}); images are built and containers run there",
        )
    else:
        yield Finding("ok", "engine is local: it runs on this machine")
    if where.scheme == "tcp" and not where.tls and where.host not in _LOOPBACK:
        yield Finding(
            "warning",
            f"{where.url} is plain tcp without TLS: anyone on that network controls the "
            "engine; set DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH, or use ssh://",
        )


def check_platform(
    environ: Mapping[str, str], facts: Engine, image: str, wanted: str | None
) -> Iterator[Finding]:
    """The engine's platform against the web image's (compose's `platform`, or the built one)."""
    built = None
    if image:
        try:
            built = _docker(
                environ, "image", "inspect", "--format", "{{.Os}}/{{.Architecture}}", image
            )
        except RuntimeError:
            built = None
    target = wanted or built
    if target is None:
        yield Finding("ok", f"engine platform {facts.platform}: images are built on it, for it")
    elif target == facts.platform:
        yield Finding("ok", f"engine platform {facts.platform}, image {image} {target}")
    else:
        yield Finding(
            "warning",
            f"image {image} is {target} but the engine is {facts.platform}: it runs under "
            "emulation (slow) or not at all; build on the engine without `platform:`",
        )


def published_hint(where: Endpoint, published: tuple[str, str]) -> Finding:
    """On a remote engine a loopback port is the engine's loopback: how to reach it from here."""
    address, port = published
    if address not in ("127.0.0.1", "localhost", "::1"):
        return Finding(
            "note",
            f"web is published on {address}:{port} of the engine's machine: open "
            f"http://{where.host or 'ENGINE-HOST'}:{port}/ from here",
        )
    machine = where.host if where.host not in _LOOPBACK else "ENGINE-HOST"
    return Finding(
        "warning",
        f"web is published on {address}:{port} of the engine's machine, not reachable from "
        f"this one: tunnel it with `ssh -N -L {port}:127.0.0.1:{port} {machine}`, or set "
        f"CSERVER_HOST_ADDR=0.0.0.0 in .env to publish it on that machine's network",
    )


def bind_mounts(services: Mapping[str, Mapping]) -> list[tuple[str, str, str]]:
    """(service, source, target) of every bind mount of the resolved services."""
    found = []
    for name, service in sorted(services.items()):
        for volume in service.get("volumes") or []:
            if volume.get("type") == "bind":
                found.append((name, str(volume.get("source")), str(volume.get("target"))))
    return found


WATCH_FIX = "use `docker compose watch` (it syncs into the container) instead"
DEVCONTAINER_FIX = (
    "a Dev Container on a remote engine needs the repository on that machine: clone it "
    "there, or use your editor's 'clone repository in container volume'"
)


def check_bind_mounts(
    services: Mapping[str, Mapping], files: str, root: Path, fix: str
) -> Iterator[Finding]:
    """On a remote engine a bind mount names a path on the engine's disk, not this checkout."""
    mounts = bind_mounts(services)
    for service, source, target in mounts:
        mine = " (this checkout)" if Path(source).resolve() == root else ""
        yield Finding(
            "warning",
            f"{files}: {service} bind-mounts {source}{mine} at {target}; on the remote engine "
            f"that names a path on its machine, which does not hold this code: {fix}",
        )
    if not mounts:
        yield Finding(
            "ok",
            f"{files}: no service bind-mounts a path of this machine; code reaches web "
            "through the build context and watch's sync",
        )


def located(environ: Mapping[str, str]) -> tuple[Endpoint, Engine | None]:
    """The endpoint, and the engine's facts (None when it does not answer)."""
    where = endpoint(environ)
    try:
        return where, engine(environ)
    except (RuntimeError, ValueError):
        return where, None


def stack_files(root: Path) -> list[tuple[list[str], str]]:
    """The sets of compose files the stack is started with, each with the fix for a bind
    mount in it: compose.yaml (with the team's override when there is one), and the files
    devcontainer.json names."""
    main = ["compose.yaml"]
    if (root / OVERRIDE_FILE).is_file():
        main.append(OVERRIDE_FILE)
    sets = [(main, WATCH_FIX)]
    path = root / DEVCONTAINER_JSON
    if path.is_file():
        try:
            config = parse_jsonc(path.read_text(encoding="utf-8", errors="replace"))
        except DevcontainerError:
            return sets  # check_devcontainer says what is wrong with it
        named = [str(f) for f in compose_files(config, path.parent) if f.is_file()]
        if named:
            sets.append((named, DEVCONTAINER_FIX))
    return sets


def check_stack_on_engine(
    root: Path,
    environ: Mapping[str, str],
    view: ComposeView,
    where: Endpoint,
    facts: Engine | None,
) -> Iterator[Finding]:
    """The platform the web image runs on; on a remote engine, what publishing and bind mounts
    mean there."""
    if facts is None:
        return
    yield from check_platform(environ, facts, view.image, view.platform)
    if not is_remote(where, facts):
        return
    if view.published:
        yield published_hint(where, view.published)
    for files, fix in stack_files(root):
        services = resolved_services(root, environ, files)
        if isinstance(services, Finding):
            continue  # check_override / check_devcontainer report it
        shown = " + ".join(
            Path(f).relative_to(root).as_posix() if Path(f).is_absolute() else f for f in files
        )
        yield from check_bind_mounts(services, shown, root, fix)

"""compose.yaml and the Dockerfile as Compose resolves them (`docker compose config`, no engine)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from cserver.config import ServerConfig
from cserver.stack.envdoc import NOT_PASSED_TO_WEB
from tests.docker.conftest import COMPOSE_FILE, ROOT, clean_environ, docker_required

DOCKERFILE = ROOT / "docker" / "Dockerfile"
DB_PORT_OVERRIDE = ROOT / "docker" / "compose.db-port.yaml"


@pytest.fixture(scope="module")
def compose_cli(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty env file, once the Compose v2 CLI is known to exist (no engine needed)."""
    ok = shutil.which("docker") is not None
    if ok:
        probe = subprocess.run(
            ["docker", "compose", "version"], capture_output=True, text=True, timeout=30
        )
        ok = probe.returncode == 0
    if not ok:
        reason = "the Docker Compose v2 CLI is not installed"
        if docker_required():
            pytest.fail(f"{reason} (CSERVER_REQUIRE_DOCKER=1)", pytrace=False)
        pytest.skip(reason)
    empty = tmp_path_factory.mktemp("compose-config") / "empty.env"
    empty.write_text("")
    return empty


def config(
    env_file: Path, env: dict[str, str] | None = None, *extra: str, check: bool = True
) -> Any:
    """`docker compose config` as JSON (or the failed process when check is false)."""
    files = ["-f", str(COMPOSE_FILE), *extra]
    proc = subprocess.run(
        ["docker", "compose", "--env-file", str(env_file), *files, "config", "--format", "json"],
        cwd=ROOT,
        env={**clean_environ(), **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )
    if not check:
        return proc
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_no_env_file_needed_and_db_is_private(compose_cli: Path) -> None:
    services = config(compose_cli)["services"]
    assert set(services) == {"db", "migrate", "bootstrap", "web"}  # probe: under its profile
    assert not services["db"].get("ports"), "db must not be published by default"
    assert services["db"]["image"] == "postgres:17"
    [port] = services["web"]["ports"]
    assert (port["host_ip"], port["published"], port["target"]) == ("127.0.0.1", "8000", 8000)


def test_web_runs_runcserver_after_migrations(compose_cli: Path) -> None:
    web = config(compose_cli)["services"]["web"]
    assert web["command"] == ["python", "-m", "cserver", "runcserver", "0.0.0.0:8000"]
    assert web["init"] is True
    assert web["depends_on"]["db"]["condition"] == "service_healthy"
    assert web["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert web["environment"]["CSERVER_RELOAD"] == "true"
    watch = {(w["action"], Path(w["path"]).name) for w in web["develop"]["watch"]}
    assert watch == {("sync", "cserver"), ("rebuild", "pyproject.toml")}


def test_every_server_variable_reaches_web(compose_cli: Path) -> None:
    values = {
        "CSERVER_MODE": "fork",
        "CSERVER_WORKERS": "3",
        "CSERVER_PROCESSES": "2",
        "CSERVER_RELOAD": "false",
        "CSERVER_THREADING": "false",
        "CSERVER_DELAY": "true",
        "CSERVER_DELAY_MIN_MS": "7",
        "CSERVER_DELAY_MAX_MS": "70",
        "CSERVER_SEED": "42",
        "CSERVER_KEEPALIVE_TIMEOUT": "2.5",
        "CSERVER_BACKLOG": "64",
        "CSERVER_GRACE_PERIOD": "1.5",
        "CSERVER_DIAGNOSTICS": "true",
        "CSERVER_DIAGNOSTICS_ALLOW_REMOTE": "false",
        "CSERVER_CONNECTION_LIMIT": "77",
        "CSERVER_HEADER_TIMEOUT": "3.5",
        "CSERVER_MAX_BODY_BYTES": "1024",
        "CSERVER_MAX_REQUEST_LINE_BYTES": "2048",
        "CSERVER_MAX_HEADER_BYTES": "4096",
        "CSERVER_MAX_HEADERS": "50",
        "CSERVER_LINGER_TIMEOUT": "4.5",
        "CSERVER_LINGER_IDLE": "0.5",
        "CSERVER_LINGER_BYTES": "4096",
        "CSERVER_DEBUGPY": "0.0.0.0:5678",
        "CSERVER_DEBUGPY_WAIT": "true",
        "CSERVER_ADDR": "0.0.0.0",
        "CSERVER_PORT": "9123",
    }
    fields = {f"CSERVER_{name.upper()}" for name in ServerConfig.model_fields}
    passed = fields - {f"CSERVER_{name.upper()}" for name in NOT_PASSED_TO_WEB}
    # The address becomes the published port; side processes and the bootstrap command
    # become services of their own, not variables of the web process.
    stack_level = {"CSERVER_SIDE_PROCESSES", "CSERVER_BOOTSTRAP"}
    assert passed | {"CSERVER_ADDR", "CSERVER_PORT", "CSERVER_IPV6"} | stack_level == fields
    assert passed <= set(values), "this test must set every variable web receives"
    web = config(compose_cli, values)["services"]["web"]
    assert {name: web["environment"][name] for name in passed} == {n: values[n] for n in passed}
    # Address and port: where the container's port is published, like the server outside.
    [port] = web["ports"]
    assert (port["host_ip"], port["published"]) == ("0.0.0.0", "9123")
    overridden = config(
        compose_cli, {**values, "CSERVER_HOST_ADDR": "127.0.0.2", "CSERVER_HOST_PORT": "9124"}
    )
    [port] = overridden["services"]["web"]["ports"]
    assert (port["host_ip"], port["published"]) == ("127.0.0.2", "9124")


def test_database_settings_from_variables(compose_cli: Path) -> None:
    env = {
        "POSTGRES_USER": "u1",
        "POSTGRES_PASSWORD": "p1",
        "POSTGRES_DB": "d1",
        "POSTGRES_MAX_CONNECTIONS": "33",
        "POSTGRES_LOG_CONNECTIONS": "on",
        "POSTGRES_LOG_DISCONNECTIONS": "on",
        "DJANGO_CONN_MAX_AGE": "None",
    }
    services = config(compose_cli, env)["services"]
    assert services["db"]["command"] == [
        "postgres",
        "-c",
        "max_connections=33",
        "-c",
        "log_connections=on",
        "-c",
        "log_disconnections=on",
    ]
    for name in ("web", "migrate"):
        environment = services[name]["environment"]
        assert environment["DATABASE_URL"] == "postgres://u1:p1@db:5432/d1"
        assert environment["DJANGO_CONN_MAX_AGE"] == "None"


def test_probe_profile(compose_cli: Path) -> None:
    probe = config(compose_cli, None, "--profile", "probe")["services"]["probe"]
    assert probe["entrypoint"] == ["python", "-m", "cserver", "probe"]
    assert probe["command"][0] == "http://web:8000/whoami"
    assert probe["depends_on"]["web"]["condition"] == "service_healthy"
    assert probe["environment"]["DATABASE_URL"].endswith("@db:5432/cserver")


def test_db_port_override_publishes_on_loopback(compose_cli: Path) -> None:
    services = config(compose_cli, None, "-f", str(DB_PORT_OVERRIDE))["services"]
    [port] = services["db"]["ports"]
    assert (port["host_ip"], port["published"], port["target"]) == ("127.0.0.1", "5432", 5432)


def test_dockerfile_shape() -> None:
    text = DOCKERFILE.read_text()
    lines = [line.strip() for line in text.splitlines()]
    assert not any(line.startswith("# syntax=") for line in lines), "no registry frontends"
    assert re.search(r"^FROM python:3\.13-slim$", text, re.M)
    assert "--mount=type=cache" in text
    assert re.search(r"^ARG UID=", text, re.M) and re.search(r"^ARG GID=", text, re.M)
    [user] = [line for line in lines if line.startswith("USER ")]
    assert user.split()[1] not in {"root", "0"}
    # The image's command (not the indented one of HEALTHCHECK) is in exec form.
    [cmd] = [line for line in text.splitlines() if line.startswith("CMD ")]
    assert cmd.startswith("CMD ["), "exec form"
    health = text[text.index("HEALTHCHECK") :]
    assert "http.client" in health and "/hello" in health

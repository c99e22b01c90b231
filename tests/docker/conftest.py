"""One real compose stack (db, migrate, web) shared by the Docker tests of a session."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import requests

from testkit.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "compose.yaml"
# A tag of its own, so the suite never replaces the image a developer runs; two checkouts
# testing at once on one engine give each their own (CSERVER_TEST_IMAGE).
TEST_IMAGE = os.environ.get("CSERVER_TEST_IMAGE", "cserver-test")
# Variables the stack reads: a developer's or CI's values must not leak into the tests.
_STACK_PREFIXES = ("CSERVER_", "POSTGRES_", "DJANGO_", "DATABASE_URL", "COMPOSE_")

BUILD_TIMEOUT = 900  # cold build on CI downloads Django, psycopg, pydantic
UP_TIMEOUT = 180
COMMAND_TIMEOUT = 120


def docker_required() -> bool:
    """True when CI demands a real Docker engine: then a missing engine fails the tests."""
    return os.environ.get("CSERVER_REQUIRE_DOCKER", "") == "1"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/docker/ needs Docker: mark it so `-m "not docker"` works."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.docker)


def _engine_problem() -> str | None:
    """Why no Docker engine with Compose v2 is usable here, or None when one answers."""
    if shutil.which("docker") is None:
        return "the docker CLI is not installed"
    try:
        version = subprocess.run(
            ["docker", "compose", "version", "--short"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except subprocess.TimeoutExpired:
        return "`docker compose version` did not answer within 30 s"
    if version.returncode != 0:
        return "Docker Compose v2 (`docker compose`) is not installed"
    try:
        import docker

        client = docker.from_env(timeout=10)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:  # any failure means: no engine to test against
        return f"no Docker engine answers ({type(exc).__name__}: {exc})"
    return None


@pytest.fixture(scope="session")
def docker_engine() -> None:
    """Skip (or fail, with CSERVER_REQUIRE_DOCKER=1) when no Docker engine answers."""
    problem = _engine_problem()
    if problem is None:
        return
    if docker_required():
        pytest.fail(f"{problem} (CSERVER_REQUIRE_DOCKER=1)", pytrace=False)
    pytest.skip(problem)


def clean_environ() -> dict[str, str]:
    """os.environ without any variable the stack reads."""
    return {k: v for k, v in os.environ.items() if not k.startswith(_STACK_PREFIXES)}


def wait_for(predicate: Any, timeout: float, interval: float = 0.2) -> Any:
    """Poll predicate until it returns something truthy; return it, or the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


class ComposeStack:
    """`docker compose -p <unique project>` on the repository's compose.yaml."""

    def __init__(self, project: str, env_file: Path, port: int) -> None:
        self.project = project
        self.env_file = env_file  # empty: a developer's ./.env must not change the tests
        self.port = port
        self.build_seconds = 0.0
        self.up_seconds = 0.0
        self.base_env = {
            **clean_environ(),
            "CSERVER_IMAGE": TEST_IMAGE,
            "CSERVER_HOST_PORT": str(port),
            # Health checks are request-log lines, hence 10 s by default; tests want speed.
            "CSERVER_HEALTHCHECK_INTERVAL": "1s",
        }
        # What `web` currently runs with (variables over the defaults, override files).
        self.web_config: tuple[dict[str, str], tuple[Path, ...]] | None = ({}, ())
        import docker

        self.client = docker.from_env(timeout=60)

    # --- compose -----------------------------------------------------------------------------
    def argv(self, *args: str, files: Sequence[Path] = (), main: Path = COMPOSE_FILE) -> list[str]:
        """The command line of `docker compose ARGS` on this project."""
        argv = ["docker", "compose", "-p", self.project, "--env-file", str(self.env_file)]
        for path in (main, *files):
            argv += ["-f", str(path)]
        return [*argv, *args]

    def environ(self, env: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment compose runs with: the test's variables over a clean one."""
        return {**self.base_env, **(env or {})}

    def compose(
        self,
        *args: str,
        env: Mapping[str, str] | None = None,
        files: Sequence[Path] = (),
        timeout: float = COMMAND_TIMEOUT,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """Run one compose command, bounded by timeout; raise with its output on failure."""
        proc = subprocess.run(
            self.argv(*args, files=files),
            cwd=ROOT,
            env=self.environ(env),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    def up(self, env: Mapping[str, str] | None = None, timeout: float = UP_TIMEOUT) -> float:
        """`up -d --wait` of the whole stack; returns the seconds it took."""
        started = time.monotonic()
        self.compose("up", "-d", "--wait", env=env, timeout=timeout)
        self.web_config = (dict(env or {}), ())
        return time.monotonic() - started

    def recreate_web(
        self,
        env: Mapping[str, str] | None = None,
        files: Sequence[Path] = (),
        wait: bool = True,
    ) -> None:
        """Replace only `web`, with these variables over the defaults (and override files)."""
        self.web_config = None  # unknown until compose succeeds
        args = ["up", "-d", "--no-deps", "--force-recreate"]
        if wait:
            args.append("--wait")
        self.compose(*args, "web", env=env, files=files, timeout=UP_TIMEOUT)
        self.web_config = (dict(env or {}), tuple(files))

    def ensure_web(self, env: Mapping[str, str] | None = None, files: Sequence[Path] = ()) -> None:
        """Make `web` run with exactly this configuration, recreating it only if needed."""
        wanted = (dict(env or {}), tuple(files))
        running = self.container("web").attrs["State"]["Running"]
        if self.web_config != wanted or not running or self.health("web") != "healthy":
            self.recreate_web(env, files)

    def down(self, volumes: bool) -> None:
        """Remove the containers (and the database volume when volumes is true)."""
        self.web_config = None
        args = ["down", "--remove-orphans", "--timeout", "5"]
        if volumes:
            args.append("--volumes")
        self.compose(*args, timeout=COMMAND_TIMEOUT)

    def remove(self) -> None:
        """Teardown: `down -v`; if compose itself fails, remove by label with the SDK."""
        try:
            self.down(volumes=True)
        except Exception:
            label = f"com.docker.compose.project={self.project}"
            for container in self.client.containers.list(all=True, filters={"label": label}):
                with contextlib.suppress(Exception):
                    container.remove(force=True, v=True)
            for volume in self.client.volumes.list(filters={"label": label}):
                with contextlib.suppress(Exception):
                    volume.remove(force=True)
        finally:
            self.client.close()

    def logs(self, service: str) -> str:
        """What a service's container printed (stdout and stderr), exactly."""
        return str(self.container(service).logs().decode("utf-8", "replace"))

    # --- containers (docker SDK) -------------------------------------------------------------
    def container(self, service: str) -> Any:
        """The (single) container of a service, running or not."""
        found = self.client.containers.list(
            all=True,
            filters={
                "label": [
                    f"com.docker.compose.project={self.project}",
                    f"com.docker.compose.service={service}",
                ]
            },
        )
        assert len(found) == 1, f"expected one {service} container, found {len(found)}"
        return found[0]

    def health(self, service: str) -> str | None:
        """Health status: starting, healthy or unhealthy (None when no healthcheck)."""
        state = self.container(service).attrs["State"]
        return state.get("Health", {}).get("Status")

    def exec(self, service: str, cmd: Sequence[str], user: str | None = None) -> str:
        """Run a command in a service's container; return its output, fail on exit != 0."""
        kwargs = {"user": user} if user else {}
        code, output = self.container(service).exec_run(list(cmd), **kwargs)
        text = output.decode("utf-8", "replace")
        assert code == 0, f"{cmd} exited {code}: {text}"
        return text

    def psql(self, sql: str) -> str:
        """One query in the db container, as the stack's user on its database; unaligned."""
        return self.exec("db", ["psql", "-U", "cserver", "-d", "cserver", "-Atc", sql]).strip()

    def ip(self, service: str) -> str:
        """The service's address on the project network."""
        networks = self.container(service).attrs["NetworkSettings"]["Networks"]
        return str(next(iter(networks.values()))["IPAddress"])

    def web_sessions(self) -> int:
        """Client sessions the web container holds open in PostgreSQL right now."""
        # By client address: pg_isready (health check) and psql here come from elsewhere.
        sql = (
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
            f"AND client_addr = '{self.ip('web')}'"
        )
        return int(self.psql(sql))

    # --- HTTP --------------------------------------------------------------------------------
    def url(self, path: str) -> str:
        """URL of path on web's published port."""
        return f"http://127.0.0.1:{self.port}{path}"

    def get(self, path: str, timeout: float = 10) -> requests.Response:
        """GET on a new socket (no session, Connection: close)."""
        return requests.get(self.url(path), timeout=timeout, headers={"Connection": "close"})


@pytest.fixture(scope="session")
def stack(docker_engine: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComposeStack]:
    """The stack built and up (`up -d --wait`) once per session; always removed afterwards."""
    env_file = tmp_path_factory.mktemp("compose") / "empty.env"
    env_file.write_text("")
    project = f"cserver-test-{secrets.token_hex(4)}"
    stack = ComposeStack(project, env_file, free_port())
    try:
        started = time.monotonic()
        stack.compose("build", "web", timeout=BUILD_TIMEOUT)
        stack.build_seconds = time.monotonic() - started
        stack.up_seconds = stack.up()
        yield stack
    finally:
        stack.remove()

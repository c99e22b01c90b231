"""The socket-keeping reloader: no refused request across reloads, errors shown, no orphans."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from testkit.files import write_later
from testkit.procs import alive, children, generations
from testkit.serverproc import ROOT, ServerProcess, get, server_env, start_server, wait_until

SETTINGS = """
from pathlib import Path
DEBUG = True
SECRET_KEY = "reload-tests"
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "relproj.urls"
INSTALLED_APPS = ["django.contrib.staticfiles", "cserver"]
MIDDLEWARE = []
STATIC_URL = "static/"
DATABASES = {}
TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "DIRS": [Path(__file__).resolve().parent / "templates"],
}]
"""
URLS = """
from django.urls import path
from relproj import views
urlpatterns = [path("version", views.version), path("page", views.page)]
"""
VIEWS = """
import os, time
from django.http import HttpResponse
from django.shortcuts import render
VERSION = {version}
def version(request):
    time.sleep(int(request.GET.get("ms", "0")) / 1000)
    return HttpResponse(f"version {{VERSION}} pid {{os.getpid()}}", content_type="text/plain")
def page(request):
    return render(request, "page.html")
"""


def write_views(project: Path, version: int | str) -> None:
    text = VIEWS.format(version=version) if isinstance(version, int) else version
    write_later(project / "relproj" / "views.py", textwrap.dedent(text))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path)


def make_project(tmp_path: Path) -> Path:
    """A small project whose views say their version and pid."""
    package = tmp_path / "relproj"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "settings.py").write_text(SETTINGS)
    (package / "urls.py").write_text(URLS)
    (package / "templates").mkdir()
    (package / "templates" / "page.html").write_text("template one")
    write_views(tmp_path, 1)
    return tmp_path


def project_env(project: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    return server_env(
        {
            "DJANGO_SETTINGS_MODULE": "relproj.settings",
            "PYTHONPATH": f"{project}{os.pathsep}{ROOT}",
            **(extra or {}),
        }
    )


def start_reloading(
    project: Path, *args: str, env_extra: dict[str, str] | None = None
) -> ServerProcess:
    server = start_server(
        list(args), env=project_env(project, env_extra), noreload=False, cwd=project, timeout=40
    )
    # The watcher's first snapshot is its baseline: a change made before it is not a change.
    assert wait_until(lambda: "Watching for file changes" in server.output(), 20)
    time.sleep(1.5)
    return server


def body(server: ServerProcess, path: str = "/version", **kw) -> str:
    status, _, data = get(server.url(path), **kw)
    assert status == 200, data[:500]
    return data.decode()


class Poller:
    """Polls every 10 ms on a new socket, counting refused connections and 5xx answers."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.refused = 0
        self.errors = 0
        self.ok = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        deadline = time.monotonic() + 120
        while not self.stop.is_set() and time.monotonic() < deadline:
            try:
                status, _, _ = get(self.server.url("/version"), timeout=20)
                if status >= 500:
                    self.errors += 1
                else:
                    self.ok += 1
            except ConnectionRefusedError:
                self.refused += 1
            except OSError:
                self.errors += 1
            time.sleep(0.01)

    def finish(self) -> None:
        self.stop.set()
        self.thread.join(25)


@pytest.mark.parametrize("mode", ["thread", "pool", "fork", "asgi"])
def test_reloads_refuse_nothing_while_polled(project: Path, mode: str) -> None:
    with start_reloading(project, "--mode", mode) as server:
        assert body(server).startswith("version 1")
        poller = Poller(server)
        try:
            for version in (2, 3):
                write_views(project, version)
                assert wait_until(
                    lambda v=version: body(server).startswith(f"version {v} "), 20, 0.05
                ), server.output()
            # Reloads are quick: keep polling until enough answers came to mean something.
            assert wait_until(lambda: poller.ok >= 5, 10, 0.05)
        finally:
            poller.finish()
        assert poller.refused == 0
        assert poller.errors == 0


def test_import_error_is_served_as_500_then_fixed_without_action(project: Path) -> None:
    with start_reloading(project, "--mode", "pool") as server:
        assert body(server).startswith("version 1")
        write_views(project, "def broken(:\n")

        def shows_error() -> bool:
            status, _, data = get(server.url("/version"))
            return status == 500 and b"SyntaxError" in data

        assert wait_until(shows_error, 20, 0.1), server.output()
        status, headers, data = get(server.url("/version"), headers={"Accept": "text/html"})
        assert status == 500
        assert headers["Content-Type"].startswith("text/html")
        assert b"views.py" in data
        status, headers, data = get(server.url("/version"), headers={"Accept": "*/*"})
        assert headers["Content-Type"].startswith("text/plain")
        write_views(project, 4)
        assert wait_until(lambda: _safe_body(server).startswith("version 4 "), 20, 0.1)


MANAGE_PY = """
import os, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "relproj.settings")
from django.core.management import execute_from_command_line
execute_from_command_line(sys.argv)
"""


@pytest.mark.parametrize("entry", ["manage.py", "cserver"])
def test_models_broken_at_startup_are_served_as_500_until_fixed(project: Path, entry: str) -> None:
    """What runserver's special case does for its own name: survive the first setup()."""
    app = project / "relapp"
    app.mkdir()
    (app / "__init__.py").write_text("")
    write_later(app / "models.py", "def broken(:\n")
    settings = project / "relproj" / "settings.py"
    settings.write_text(SETTINGS.replace('"cserver"]', '"relapp", "cserver"]'))
    (project / "manage.py").write_text(MANAGE_PY)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    program = ["manage.py"] if entry == "manage.py" else ["-m", "cserver"]
    argv = [sys.executable, *program, "runcserver", f"127.0.0.1:{port}"]
    with ServerProcess(argv, project_env(project), project) as server:
        server.port = port
        output = server.wait_for_output("serving the error until a file changes", 30)
        assert "serving the error" in output, output
        status, _, data = get(server.url("/version"), headers={"Accept": "*/*"})
        assert status == 500
        assert b"SyntaxError" in data and b"models.py" in data
        write_later(app / "models.py", "")
        assert wait_until(lambda: _safe_body(server).startswith("version 1 "), 20, 0.1), (
            server.output()
        )
    assert server.proc.returncode == 0, server.output()


def _safe_body(server: ServerProcess) -> str:
    with contextlib.suppress(OSError, AssertionError):
        return body(server)
    return ""


def test_reload_lets_a_long_request_finish_on_the_old_code(project: Path) -> None:
    with start_reloading(project, "--mode", "thread") as server:
        result: dict = {}
        slow = threading.Thread(
            target=lambda: result.update(text=body(server, "/version?ms=2500", timeout=20))
        )
        slow.start()
        time.sleep(0.3)
        write_views(project, 2)
        assert wait_until(lambda: body(server).startswith("version 2 "), 20, 0.05)
        slow.join(20)
        assert result["text"].startswith("version 1 ")


def test_template_edit_needs_no_restart(project: Path) -> None:
    with start_reloading(project) as server:
        pid = body(server).split("pid ")[1]
        assert body(server, "/page") == "template one"
        page = project / "relproj" / "templates" / "page.html"
        page.write_text("template two")
        assert wait_until(lambda: body(server, "/page") == "template two", 10, 0.1)
        assert body(server).split("pid ")[1] == pid


def test_forced_polling_still_reloads_code_and_templates(project: Path) -> None:
    # Where a mount delivers no events, watchfiles polls when asked; it must see both kinds.
    with start_reloading(project, env_extra={"WATCHFILES_FORCE_POLLING": "1"}) as server:
        assert "Watching for file changes with watchfiles, polling" in server.output()
        assert body(server).startswith("version 1")
        write_views(project, 2)
        assert wait_until(lambda: body(server).startswith("version 2"), 15, 0.1)
        page = project / "relproj" / "templates" / "page.html"
        page.write_text("template polled")
        assert wait_until(lambda: body(server, "/page") == "template polled", 10, 0.1)


def test_sighup_starts_a_new_generation(project: Path) -> None:
    with start_reloading(project) as server:
        pid = body(server).split("pid ")[1]
        server.signal(signal.SIGHUP)
        assert wait_until(lambda: _safe_body(server).split("pid ")[-1] not in ("", pid), 20, 0.1)


def test_sigterm_drains_and_exits_zero(project: Path) -> None:
    with start_reloading(project, "--mode", "fork") as server:
        result: dict = {}
        slow = threading.Thread(
            target=lambda: result.update(text=body(server, "/version?ms=1000", timeout=10))
        )
        slow.start()
        time.sleep(0.3)
        server.signal(signal.SIGTERM)
        assert server.wait(10) == 0
        slow.join(10)
        assert result["text"].startswith("version 1 ")


@pytest.mark.parametrize("mode", ["thread", "pool", "fork"])
def test_kill_9_of_supervisor_leaves_no_process(project: Path, mode: str) -> None:
    server = start_reloading(project, "--mode", mode)
    try:
        holders = [
            threading.Thread(
                target=lambda: _safe_body(server, "/version?ms=20000") if False else None
            )
        ]
        # Hold two requests open so fork mode has live children.
        for _ in range(2):
            thread = threading.Thread(target=_hold, args=(server,), daemon=True)
            thread.start()
            holders.append(thread)
        generation = wait_until(lambda: len(generations(server.proc.pid)) == 1, 10)
        assert generation
        (server_pid,) = generations(server.proc.pid)
        if mode == "fork":
            assert wait_until(lambda: len(children(server_pid)) == 2, 10)
        # The warm process that generations are forked from goes too.
        family = [*children(server.proc.pid), *children(server_pid)]
        port = server.port
        server.proc.kill()
        server.proc.wait(5)
        assert wait_until(lambda: not any(alive(pid) for pid in family), 1.0)
        probe = socket.socket()
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            assert wait_until(lambda: _bind(probe, port), 1.0)
        finally:
            probe.close()
    finally:
        server.stop()


def _hold(server: ServerProcess) -> None:
    with contextlib.suppress(OSError, http.client.HTTPException):
        get(server.url("/version?ms=20000"), timeout=30)


def _bind(sock: socket.socket, port: int) -> bool:
    try:
        sock.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False

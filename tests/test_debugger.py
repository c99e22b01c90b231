"""--debugpy: an IDE's debug session on one port for the whole run, across reloads.

A DAP client of our own (testkit.dap) does what VS Code does on "attach": initialize,
attach, setBreakpoints, configurationDone; a request then stops on the breakpoint in the
view, the `stopped` event's frame names the view's file and line, and `continue` lets the
response go out. In fork mode the request runs in a child process, which debugpy announces
with a `debugpyAttach` event; the client attaches to it as VS Code does. After a reload the
old session is closed and the same port reaches the new generation.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from testkit.dap import DAPClient, DAPClosed, DAPError
from testkit.ports import free_port
from testkit.serverproc import ServerProcess, get, start_server, wait_until
from tests.test_reloader import make_project, project_env, start_reloading, write_views

pytest.importorskip("debugpy")

REATTACH_TIMEOUT = 15.0


def _breakpoint_line(views: Path) -> int:
    """The line of the version view's return statement."""
    lines = views.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("def version"))
    return next(i for i in range(start, len(lines)) if "return HttpResponse" in lines[i]) + 1


def _request_in_thread(server: ServerProcess, path: str) -> tuple[threading.Thread, list]:
    result: list = []

    def run() -> None:
        result.append(get(server.url(path), timeout=60))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result


@contextlib.contextmanager
def _child_session(main: DAPClient, port: int, breakpoints: dict) -> Iterator[DAPClient]:
    """The session of the process debugpy announced (a fork-mode child), attached."""
    announced = main.event("debugpyAttach", timeout=30)
    with DAPClient("127.0.0.1", port) as child:
        child.attach(breakpoints, **announced["body"])
        yield child


def _attach_children_until_closed(session: DAPClient, port: int) -> threading.Event:
    """As an IDE does, attach to every process the session announces, until the adapter
    closes the session; the event is set then."""
    closed = threading.Event()

    def run() -> None:
        children: list[DAPClient] = []
        try:
            while True:
                try:
                    announced = session.event("debugpyAttach", timeout=5)
                except DAPClosed:
                    break
                except DAPError:
                    continue  # nothing announced in 5 s: keep listening
                child = DAPClient("127.0.0.1", port)
                children.append(child)
                child.attach({}, **announced["body"])
        except (DAPError, OSError):
            pass  # a child that went away mid-attach: it is not the point here
        finally:
            closed.set()
            for child in children:
                child.close()

    threading.Thread(target=run, daemon=True).start()
    return closed


def _stop_once(session: DAPClient, views: Path, line: int) -> None:
    """Wait for the breakpoint, check where it stopped, continue."""
    stopped = session.event("stopped", timeout=30)
    thread_id = stopped["body"]["threadId"]
    frame = session.top_frame(thread_id)
    assert Path(frame["source"]["path"]).resolve() == views.resolve(), frame
    assert frame["line"] == line, frame
    session.resume(thread_id)


def _debug_one_request(
    server: ServerProcess, port: int, mode: str, views: Path, expect: str
) -> DAPClient:
    """Attach, set the breakpoint, send a request, stop on it, continue; the open session."""
    line = _breakpoint_line(views)
    breakpoints = {str(views): [line]}
    session = _attach_with_retry(port, breakpoints)
    thread, result = _request_in_thread(server, "/version")
    if mode == "fork":
        with _child_session(session, port, breakpoints) as child:
            _stop_once(child, views, line)
            thread.join(30)
    else:
        _stop_once(session, views, line)
        thread.join(30)
    assert result, "the request did not finish after continue"
    session.clear_breakpoints(str(views))  # later requests run through
    status, _, data = result[0]
    assert status == 200 and data.decode().startswith(expect), (status, data[:200])
    return session


def _attach_with_retry(port: int, breakpoints: dict) -> DAPClient:
    """An attached session; retried while the next generation's adapter is not up yet."""
    deadline = time.monotonic() + REATTACH_TIMEOUT
    while True:
        session = DAPClient("127.0.0.1", port, timeout=10)
        try:
            session.attach(breakpoints, subProcess=True)
            return session
        except (DAPError, OSError):
            session.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.mark.parametrize("mode", ["pool", "fork"])
def test_breakpoints_stop_before_and_after_a_reload_on_one_port(tmp_path: Path, mode: str) -> None:
    project = make_project(tmp_path)
    views = project / "relproj" / "views.py"
    port = free_port()
    server = start_reloading(project, "--mode", mode, "--debugpy", str(port))
    try:
        assert server.wait_for_output(f"debugpy on 127.0.0.1:{port}", 20)
        first = _debug_one_request(server, port, mode, views, "version 1")
        first_closed = _attach_children_until_closed(first, port)

        write_views(project, 2)
        assert wait_until(lambda: get(server.url("/version"))[2].startswith(b"version 2"), 30)
        serving = time.monotonic()
        # The old generation's session ends with it, once it has drained.
        assert first_closed.wait(REATTACH_TIMEOUT), "the old generation's session stayed open"
        first.close()
        second = _debug_one_request(server, port, mode, views, "version 2")
        print(
            f"{mode}: attached again {time.monotonic() - serving:.2f} s after the new "
            "generation served (request and breakpoint included)"
        )
        second.close()
    finally:
        server.stop()


def test_debugpy_wait_holds_the_first_request_until_an_ide_attaches(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    port = free_port()
    server = start_reloading(project, "--debugpy", str(port), "--debugpy-wait")
    try:
        assert server.wait_for_output("waiting for a debugger", 20)
        thread, result = _request_in_thread(server, "/version")
        thread.join(2)
        assert not result, "a request was served before any debugger attached"
        with DAPClient("127.0.0.1", port) as session:
            session.attach({})
            thread.join(30)
            assert result and result[0][0] == 200
    finally:
        server.stop()


def test_noreload_listens_on_the_port_itself(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    views = project / "relproj" / "views.py"
    port = free_port()
    server = start_server(
        ["--mode", "thread", "--debugpy", f"127.0.0.1:{port}"],
        env=project_env(project),
        cwd=project,
    )
    try:
        assert server.wait_for_output(f"debugpy on 127.0.0.1:{port}", 20)
        _debug_one_request(server, port, "thread", views, "version 1").close()
    finally:
        server.stop()


def _run_once(project: Path, *args: str, env_extra: dict[str, str] | None = None) -> str:
    argv = [sys.executable, "-m", "cserver", "runcserver", "127.0.0.1:0", "--noreload", *args]
    server = ServerProcess(argv, env=project_env(project, env_extra), cwd=project)
    try:
        code = server.wait(30)
    finally:
        server.stop()
    out = server.output()
    assert code != 0 and "Traceback" not in out, out
    return out


def test_a_bad_debugger_address_is_one_line_naming_it(tmp_path: Path) -> None:
    out = _run_once(make_project(tmp_path), "--debugpy", "80")
    assert "Error: --debugpy 80 is not valid: expected a debugger port from 1024" in out, out


def test_debugpy_missing_is_one_line_saying_how_to_install_it(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    # A debugpy that cannot be imported, ahead of the real one on the path.
    shadow = tmp_path / "shadow" / "debugpy"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('not installed')\n")
    pythonpath = f"{tmp_path / 'shadow'}{os.pathsep}{project_env(project)['PYTHONPATH']}"
    out = _run_once(project, "--debugpy", "5999", env_extra={"PYTHONPATH": pythonpath})
    assert "--debugpy needs debugpy, which is not installed: pip install 'cserver[debug]'" in out

"""runcserver as a drop-in for runserver: its command line, messages and exit codes."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from testkit.serverproc import ROOT, get, project_env, server_env, start_server


def run_command(*args: str, env: dict[str, str] | None = None, timeout: float = 60):
    return subprocess.run(
        [sys.executable, "-m", "cserver", *args],
        env=env or project_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.parametrize(
    ("addrport", "addr", "port"),
    [
        ("8001", "127.0.0.1", "8001"),
        ("0:8000", "0.0.0.0", "8000"),
        ("[::1]:8000", "::1", "8000"),
        ("localhost:8002", "localhost", "8002"),
        ("10.1.2.3:80", "10.1.2.3", "80"),
    ],
)
def test_addrport_forms_like_runserver(addrport: str, addr: str, port: str) -> None:
    result = run_command("runcserver", addrport, "--print-config")
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines() if line.strip()}
    assert rows["addr"][2] == addr
    assert rows["port"][2] == port
    assert "addrport" in " ".join(rows["port"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["abc:xyz"], '"abc:xyz" is not a valid port number or address:port pair.'),
        (["-6", "1.2.3.4:80"], '"1.2.3.4" is not a valid IPv6 address.'),
        (["--workers", "0"], "--workers"),
        (["--mode", "forking"], "forking"),
    ],
)
def test_bad_command_line_is_one_line_exit_2(args: list[str], message: str) -> None:
    result = run_command("runcserver", *args, "--noreload")
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_bad_environment_value_names_the_variable() -> None:
    env = project_env({"CSERVER_PORT": "abc", "CSERVER_MODE": "forking"})
    result = run_command("runcserver", "--noreload", env=env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2
    assert any("CSERVER_PORT" in line and "abc" in line for line in lines)
    assert any("CSERVER_MODE" in line and "forking" in line for line in lines)
    assert "Traceback" not in result.stderr


def test_port_in_use_is_runservers_message_and_exit_1() -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    try:
        for extra in (["--noreload"], []):
            result = run_command("runcserver", f"127.0.0.1:{port}", "--mode", "fork", *extra)
            assert result.returncode == 1, result.stderr
            assert "Error: That port is already in use." in result.stderr
            assert "Traceback" not in result.stderr
    finally:
        holder.close()


def test_banner_request_log_and_checks() -> None:
    with start_server(["--mode", "pool", "--workers", "3"], env=project_env()) as server:
        assert get(server.url("/hello"))[0] == 200
        assert get(server.url("/missing"))[0] == 404
        server.stop()
        output = server.output()
    assert "Performing system checks..." in output
    assert "System check identified no issues" in output
    assert "cserver: mode=pool workers=3 delay=off" in output
    assert '"GET /hello HTTP/1.1" 200 13' in output
    assert '"GET /missing HTTP/1.1" 404' in output


def test_skip_checks() -> None:
    with start_server(["--skip-checks"], env=project_env()) as server:
        output = server.output()
    assert "Performing system checks..." not in output


def test_unapplied_migrations_warning(tmp_path) -> None:
    env = server_env(tmp=tmp_path)
    with start_server([], env=env) as server:
        assert get(server.url("/hello"))[0] == 200
        output = server.output()
    assert "unapplied migration(s)" in output


@pytest.mark.parametrize(
    ("args", "debug", "status"),
    [([], "1", 200), (["--nostatic"], "1", 404), ([], "0", 404), (["--insecure"], "0", 200)],
)
def test_static_files_like_runserver(args: list[str], debug: str, status: int) -> None:
    env = project_env({"TEST_DEBUG": debug})
    with start_server(args, env=env) as server:
        code, _, body = get(server.url("/static/site.css"))
    assert code == status
    if status == 200:
        assert b"color" in body


def test_runconcurrentserver_alias() -> None:
    with start_server(["--mode", "thread"], command="runconcurrentserver", env=project_env()) as s:
        assert get(s.url("/hello"))[0] == 200


def test_legacy_settings_choose_fork_mode_and_delay() -> None:
    env = project_env({"DJANGO_SETTINGS_MODULE": "tests.project.legacy_settings"})
    with start_server([], env=env) as server:
        assert get(server.url("/hello"))[0] == 200
        output = server.wait_for_output("cserver: mode=")
    assert "cserver: mode=fork" in output
    assert "delay=5-10ms" in output


def test_ipv6_loopback_when_available() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 in this Python")
    try:
        probe = socket.socket(socket.AF_INET6)
        probe.bind(("::1", 0))
        probe.close()
    except OSError:
        pytest.skip("no ::1 on this machine")
    with start_server([], addrport="[::1]:0", env=project_env()) as server:
        assert server.host == "::1"
        assert get(server.url("/hello"))[0] == 200


def test_listening_beyond_loopback_warns_that_the_network_can_reach_it() -> None:
    with start_server([], addrport="0.0.0.0:0", env=project_env()) as server:
        output = server.wait_for_output("cserver: mode=")
    assert "reachable from the network" in output


def test_loopback_prints_no_network_warning() -> None:
    with start_server([], env=project_env()) as server:
        output = server.wait_for_output("cserver: mode=")
    assert "cserver: mode=" in output
    assert "reachable from the network" not in output


def test_unreachable_database_is_one_warning_line_and_the_server_still_starts() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        closed_port = holder.getsockname()[1]
    env = project_env(
        {"DATABASE_URL": f"postgres://someone:s3cret-pw@127.0.0.1:{closed_port}/nowhere"}
    )
    with start_server([], env=env) as server:
        assert get(server.url("/hello"))[0] == 200
        output = server.output()
    assert "Warning: could not check migrations:" in output
    assert "Traceback" not in output
    assert "s3cret-pw" not in output

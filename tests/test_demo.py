"""The demo project: DATABASE_URL/env parsing in-process, views over real HTTP in subprocesses.

Views are served by Django's own WSGIServer (what runserver uses) in a subprocess, so these
tests check the demo independently of cserver's server and never configure Django settings
in the pytest process. The `cserver demo` end-to-end run is in test_cli.py.
"""

from __future__ import annotations

import re
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import django
import pytest
import requests
from django.core.exceptions import ImproperlyConfigured
from hypothesis import given, settings
from hypothesis import strategies as st

from cserver.demo.dburl import SQLITE_OPTIONS, parse_database_url
from cserver.demo.env import DemoEnv, database_settings, load_demo_env
from cserver.redact import redact_url as redact
from testkit.serverproc import ServerProcess, server_env

TIMEOUT = 10  # seconds, for every HTTP request

# A server on Django's WSGIServer: "threaded" (a thread per connection, like runserver) or
# "single" (one thread, like runserver --nothreading). argv[2], "mode/worker", is put into the
# WSGI environ as cserver's server would. Prints runserver's banner line with the real port.
HARNESS = """
import sys
import django
django.setup()
from django.core.management import call_command
from django.db import connections
call_command("migrate", interactive=False, verbosity=0)
connections.close_all()
from django.contrib.staticfiles.handlers import StaticFilesHandler
from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler, WSGIServer
from django.core.wsgi import get_wsgi_application
django_app = StaticFilesHandler(get_wsgi_application())
tag = sys.argv[2] if len(sys.argv) > 2 else ""
def app(environ, start_response):
    if tag:
        environ["cserver.mode"], environ["cserver.worker"] = tag.split("/")
    return django_app(environ, start_response)
server_class = ThreadedWSGIServer if sys.argv[1] == "threaded" else WSGIServer
httpd = server_class(("127.0.0.1", 0), WSGIRequestHandler)
httpd.set_app(app)
print(f"Starting development server at http://127.0.0.1:{httpd.server_address[1]}/", flush=True)
httpd.serve_forever()
"""


def harness(tmp: Path, kind: str, tag: str = "", **env: str) -> ServerProcess:
    """Start the harness server with the demo settings and a private SQLite file."""
    server = ServerProcess(
        [sys.executable, "-c", HARNESS, kind, *([tag] if tag else [])],
        server_env(env, tmp=tmp),
        tmp,
    )
    server.wait_bound(60)
    return server


def get(server: ServerProcess, path: str, method: str = "GET") -> requests.Response:
    return requests.request(method, server.url(path), timeout=TIMEOUT)


def get_json(server: ServerProcess, path: str, method: str = "GET") -> Any:
    response = get(server, path, method)
    assert response.status_code == 200, (path, response.status_code, response.text)
    assert response.headers["Content-Type"] == "application/json"
    return response.json()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with harness(tmp_path_factory.mktemp("demo"), "threaded", "pool/pool-7") as server:
        yield server


# -- DATABASE_URL ------------------------------------------------------------------------


def test_postgres_url_gives_every_part_and_query_options() -> None:
    db = parse_database_url(
        "postgres://app%40x:p%2Fss@Db.Example.org:6543/shop?sslmode=require&connect_timeout=5"
    )
    assert db == {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "shop",
        "USER": "app@x",
        "PASSWORD": "p/ss",
        "HOST": "Db.Example.org",
        "PORT": "6543",
        "OPTIONS": {"sslmode": "require", "connect_timeout": "5"},
    }


def test_postgresql_scheme_socket_dir_ipv6_and_typed_django_options() -> None:
    from psycopg import IsolationLevel

    db = parse_database_url("postgresql://%2Fvar%2Frun%2FPG/app")
    assert (db["HOST"], db["PORT"], db["USER"], db["PASSWORD"]) == ("/var/run/PG", "", "", "")
    db = parse_database_url(
        "postgresql://u@[::1]:5432/app?isolation_level=serializable&server_side_binding=true"
    )
    assert (db["HOST"], db["PORT"]) == ("::1", "5432")
    assert db["OPTIONS"] == {
        "isolation_level": IsolationLevel.SERIALIZABLE,
        "server_side_binding": True,
    }


def test_sqlite_urls_resolve_paths_and_keep_concurrency_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    db = parse_database_url("sqlite:///rel/demo.db")
    assert db == {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(tmp_path / "rel" / "demo.db"),
        "OPTIONS": SQLITE_OPTIONS,
    }
    assert parse_database_url("sqlite:////abs/x.db")["NAME"] == "/abs/x.db"
    assert SQLITE_OPTIONS["timeout"] == 20
    if django.VERSION >= (5, 1):  # the release that added these two options
        assert SQLITE_OPTIONS["init_command"] == "PRAGMA journal_mode=WAL;"
        assert SQLITE_OPTIONS["transaction_mode"] == "IMMEDIATE"
    else:
        assert "init_command" not in SQLITE_OPTIONS


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("postgres://bob:hunter2@h:notaport/db", "port"),
        ("postgres://bob:hunter2@h:70000/db", "port"),
        ("mysql://bob:hunter2@h/db", "scheme 'mysql'"),
        ("bob:hunter2@h/db", "scheme"),
        ("postgres://bob:hunter2@h:5432/", "database name is missing"),
        ("postgres://bob:hunter2@h/db/x", "must not contain '/'"),
        ("postgres://bob:hunter2@h/db?pool=true", "DJANGO_DB_POOL"),
        ("postgres://bob:hunter2@h/db?isolation_level=chaos", "isolation_level"),
        ("sqlite://", "path is empty"),
        ("sqlite://host/x.db", "no host"),
    ],
)
def test_bad_url_is_one_line_naming_the_variable_without_password(url: str, reason: str) -> None:
    with pytest.raises(ImproperlyConfigured) as excinfo:
        parse_database_url(url)
    message = str(excinfo.value)
    assert message.startswith("DATABASE_URL=")
    assert reason in message
    assert "postgres://USER:PASSWORD@HOST:PORT/NAME" in message  # what is accepted
    assert "hunter2" not in message
    assert "\n" not in message


@settings(max_examples=60, deadline=None)
@given(
    password=st.text(st.characters(codec="ascii", exclude_characters="\x00"), min_size=1),
    plain=st.text(st.characters(codec="ascii", exclude_characters="\x00/?#@"), min_size=1),
)
def test_password_never_appears_in_an_error(password: str, plain: str) -> None:
    # "Zq9" makes the secret distinctive, so a hit is the password and not other text.
    for secret, url in [
        ("Zq9" + password, f"postgres://user:Zq9{password}@host:bad/db"),
        ("Zq9" + password, f"user:Zq9{password}@host/db"),
        ("Zq9" + plain, f"postgres://user:Zq9{plain}/db"),  # forgot "@host"
    ]:
        assert secret not in redact(url)
        try:
            parse_database_url(url)
        except ImproperlyConfigured as exc:
            assert secret not in str(exc)


def test_redact_keeps_what_is_not_secret() -> None:
    assert redact("postgres://u:pw@h:5432/d?x=1") == "postgres://u:***@h:5432/d?x=1"
    assert redact("postgres://h:5432/d") == "postgres://h:5432/d"
    assert redact("postgres://[::1]/d") == "postgres://[::1]/d"
    assert redact("sqlite:///a:b/x.db") == "sqlite:///a:b/x.db"


# -- other environment variables -----------------------------------------------------------


DEMO_VARIABLES = [str(f.validation_alias.choices[0]) for f in DemoEnv.model_fields.values()]


def demo_env(monkeypatch: pytest.MonkeyPatch, **values: str) -> DemoEnv:
    """The model read from an environment holding only these demo variables."""
    for name in DEMO_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return load_demo_env()


def demo_db(monkeypatch: pytest.MonkeyPatch, **values: str) -> dict[str, Any]:
    """DATABASES["default"] as the demo's settings build it from these variables."""
    return database_settings(demo_env(monkeypatch, **values))


def test_defaults_without_any_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    env = demo_env(monkeypatch)
    assert (env.debug, env.allowed_host_list, env.log_level) == (True, ["*"], "INFO")
    assert env.secret_key.startswith("django-insecure-")
    assert "secret_key" not in repr(env) and "database_url" not in repr(env)
    hosts = demo_env(monkeypatch, DJANGO_ALLOWED_HOSTS=" a.test, ,127.0.0.1 ")
    assert hosts.allowed_host_list == ["a.test", "127.0.0.1"]
    # compose passes unset variables as "": that is the default, not an error.
    assert demo_env(monkeypatch, DJANGO_DEBUG="", DJANGO_CONN_MAX_AGE="").debug is True


def test_default_database_is_sqlite_file_in_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    db = demo_db(monkeypatch)
    assert db["ENGINE"] == "django.db.backends.sqlite3"
    assert db["NAME"] == str(tmp_path / "cserver-demo.sqlite3")
    assert db["OPTIONS"] == SQLITE_OPTIONS
    assert (db["CONN_MAX_AGE"], db["CONN_HEALTH_CHECKS"]) == (0, False)
    db = demo_db(monkeypatch, CSERVER_DEMO_SQLITE="other.db", DJANGO_CONN_HEALTH_CHECKS="yes")
    assert (db["NAME"], db["CONN_HEALTH_CHECKS"]) == (str(tmp_path / "other.db"), True)
    # DATABASE_URL wins over CSERVER_DEMO_SQLITE
    db = demo_db(monkeypatch, CSERVER_DEMO_SQLITE="other.db", DATABASE_URL="postgres://h/d")
    assert db["ENGINE"] == "django.db.backends.postgresql"


@pytest.mark.parametrize(
    ("value", "expected"), [("None", None), ("none", None), ("0", 0), ("600", 600), ("", 0)]
)
def test_conn_max_age(monkeypatch: pytest.MonkeyPatch, value: str, expected: int | None) -> None:
    assert demo_env(monkeypatch, DJANGO_CONN_MAX_AGE=value).conn_max_age == expected


@pytest.mark.parametrize("value", ["-1", "forever", "1.5", "²"])
def test_bad_conn_max_age(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=r"^DJANGO_CONN_MAX_AGE=.* None"):
        demo_env(monkeypatch, DJANGO_CONN_MAX_AGE=value)


def test_bools_and_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    assert demo_env(monkeypatch, DJANGO_DEBUG="On").debug is True
    assert demo_env(monkeypatch, DJANGO_DEBUG="0").debug is False
    with pytest.raises(
        ImproperlyConfigured, match=r"^DJANGO_DEBUG='maybe' is not valid: expected true or false$"
    ):
        demo_env(monkeypatch, DJANGO_DEBUG="maybe")
    assert demo_env(monkeypatch, DJANGO_LOG_LEVEL="warning").log_level == "WARNING"
    with pytest.raises(ImproperlyConfigured, match="expected one of DEBUG, INFO, WARNING, ERROR"):
        demo_env(monkeypatch, DJANGO_LOG_LEVEL="loud")
    # Every bad variable is named, on one line.
    with pytest.raises(ImproperlyConfigured) as excinfo:
        demo_env(monkeypatch, DJANGO_DB_POOL="2", DJANGO_CONN_MAX_AGE="x")
    assert "DJANGO_DB_POOL='2'" in str(excinfo.value)
    assert "DJANGO_CONN_MAX_AGE='x'" in str(excinfo.value)
    assert "\n" not in str(excinfo.value)


@pytest.mark.skipif(django.VERSION < (5, 1), reason="Django's PostgreSQL pool is new in 5.1")
def test_pool_is_postgres_only_and_needs_conn_max_age_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    url = "postgres://u:pw@h/d"
    db = demo_db(monkeypatch, DATABASE_URL=url, DJANGO_DB_POOL="true")
    assert db["OPTIONS"]["pool"] is True
    with pytest.raises(ImproperlyConfigured, match=r"^DJANGO_DB_POOL=true .*SQLite"):
        demo_db(monkeypatch, DJANGO_DB_POOL="true")
    with pytest.raises(ImproperlyConfigured, match="DJANGO_CONN_MAX_AGE=None"):
        demo_db(monkeypatch, DATABASE_URL=url, DJANGO_DB_POOL="1", DJANGO_CONN_MAX_AGE="None")


def test_pool_on_a_django_without_one_says_which_release_has_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Only the version check is faked: the message must name the installed release.
    monkeypatch.setattr("cserver.demo.env.HAS_DB_POOL", False)
    with pytest.raises(ImproperlyConfigured, match=r"needs Django 5\.1 or later \(installed: "):
        demo_db(monkeypatch, DATABASE_URL="postgres://u:pw@h/d", DJANGO_DB_POOL="true")


# -- views -----------------------------------------------------------------------------------

PATHS = [
    "/hello",
    "/slow",
    "/whoami",
    "/db",
    "/db/async",
    "/counter",
    "/counter/racy",
    "/counter/safe",
    "/counter/reset",
]


def test_index_links_every_view_and_its_stylesheet_is_served(demo: ServerProcess) -> None:
    response = get(demo, "/")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    for path in PATHS:
        assert f'href="{path}' in response.text, path
    assert "ab -n 200 -c 20" in response.text
    css_href = re.search(r'<link rel="stylesheet" href="([^"]+)"', response.text)
    assert css_href is not None
    css = get(demo, css_href.group(1))
    assert css.status_code == 200
    assert css.headers["Content-Type"].startswith("text/css")
    assert "font-family" in css.text


def test_hello_is_plain_text(demo: ServerProcess) -> None:
    response = get(demo, "/hello")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert response.text == "Hello, world!"


def test_hello_length_declares_its_length_as_common_middleware_would(demo: ServerProcess) -> None:
    response = get(demo, "/hello/length")
    assert response.status_code == 200
    assert response.headers["Content-Length"] == "13"
    assert response.text == "Hello, world!"


def test_download_is_a_file_response_of_the_size_asked(demo: ServerProcess) -> None:
    response = get(demo, "/download?mb=2")
    assert response.status_code == 200
    assert response.headers["Content-Length"] == str(2 << 20)
    assert response.headers["Content-Disposition"].startswith("attachment")
    assert response.content == bytes(range(256)) * 4096 * 2
    assert get(demo, "/download?mb=9999").status_code == 400


def test_stream_yields_the_parts_asked(demo: ServerProcess) -> None:
    response = get(demo, "/stream?parts=1000")
    assert response.status_code == 200
    assert response.text.splitlines() == [f"part {n}" for n in range(1000)]
    assert get(demo, "/stream?parts=x").status_code == 400


def test_slow_sleeps_and_reports_the_worker(demo: ServerProcess) -> None:
    data = get_json(demo, "/slow?ms=120")
    assert set(data) == {"slept_ms", "mode", "worker", "pid", "thread", "started", "finished"}
    assert (data["slept_ms"], data["mode"], data["worker"]) == (120, "pool", "pool-7")
    assert data["pid"] == demo.proc.pid
    assert data["finished"] - data["started"] >= 0.11
    assert get_json(demo, "/slow?ms=0")["slept_ms"] == 0
    assert get_json(demo, "/slow")["slept_ms"] == 300


@pytest.mark.parametrize("ms", ["abc", "-1", "60001", "1.5", "²", "9" * 40])
def test_slow_rejects_bad_ms(demo: ServerProcess, ms: str) -> None:
    response = get(demo, f"/slow?ms={ms}")
    assert response.status_code == 400
    assert response.text == f"ms={ms!r} is not valid: expected an integer from 0 to 60000\n"


def test_whoami_and_db_shapes(demo: ServerProcess) -> None:
    data = get_json(demo, "/whoami")
    assert set(data) == {"mode", "worker", "pid", "thread", "db_vendor", "db_backend_pid", "conn"}
    assert (data["mode"], data["worker"], data["pid"]) == ("pool", "pool-7", demo.proc.pid)
    assert data["db_vendor"] == "sqlite"
    assert re.fullmatch(rf"sqlite:{demo.proc.pid}:\d+", data["db_backend_pid"])
    assert data["conn"] == "new"  # a fresh thread for every connection, like runserver
    data = get_json(demo, "/db")
    assert set(data) == {"db_vendor", "counters", "query_ms", "conn"}
    assert data["db_vendor"] == "sqlite"
    assert isinstance(data["counters"], int)
    assert data["query_ms"] >= 0


def test_db_async_counts_through_the_async_orm(demo: ServerProcess) -> None:
    data = get_json(demo, "/db/async")
    assert set(data) == {"db_vendor", "db_backend_pid", "counters", "query_ms", "thread"}
    assert data["counters"] == get_json(demo, "/db")["counters"]
    assert data["db_vendor"] == "sqlite"
    # The query ran in a connection of this server process.
    assert re.fullmatch(rf"sqlite:{demo.proc.pid}:\d+", data["db_backend_pid"])
    assert get(demo, "/db/async", "POST").status_code == 405


def test_counters_increment_and_reset(demo: ServerProcess) -> None:
    assert get_json(demo, "/counter/reset", "POST") == {"racy": 0, "safe": 0}
    assert get_json(demo, "/counter") == {"racy": 0, "safe": 0}
    assert get_json(demo, "/counter/racy?sleep_ms=0") == {"racy": 1, "safe": 0}
    assert get_json(demo, "/counter/racy", "POST") == {"racy": 2, "safe": 0}
    assert get_json(demo, "/counter/safe", "POST") == {"racy": 2, "safe": 1}
    assert get_json(demo, "/counter/safe?sleep_ms=0") == {"racy": 2, "safe": 2}
    assert get_json(demo, "/db")["counters"] == 2
    assert get(demo, "/counter/racy", "PUT").status_code == 405
    assert get(demo, "/counter", "POST").status_code == 405
    bad = get(demo, "/counter/safe?sleep_ms=x")
    assert (bad.status_code, bad.text.startswith("sleep_ms='x' is not valid")) == (400, True)
    assert get_json(demo, "/counter/reset") == {"racy": 0, "safe": 0}


def _hammer(server: ServerProcess, path: str, n: int) -> list[int]:
    """n requests to path released together; returns their status codes."""
    barrier = threading.Barrier(n, timeout=TIMEOUT)
    statuses: list[int] = []

    def one() -> None:
        barrier.wait()
        statuses.append(requests.post(server.url(path), timeout=30).status_code)

    threads = [threading.Thread(target=one) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(40)
    return statuses


def test_concurrent_increments_lose_racy_updates_but_not_safe_ones(demo: ServerProcess) -> None:
    get_json(demo, "/counter/reset")
    n = 8
    assert _hammer(demo, "/counter/racy?sleep_ms=400", n) == [200] * n
    assert _hammer(demo, "/counter/safe?sleep_ms=400", n) == [200] * n
    state = get_json(demo, "/counter")
    assert state["safe"] == n  # F() increments queue on SQLite's write lock, none lost
    assert 1 <= state["racy"] < n  # requests read the same value during the sleep


# -- new vs reused connections ---------------------------------------------------------------


def _whoami_series(server: ServerProcess, n: int = 3) -> list[tuple[str, Any]]:
    return [
        (data["conn"], data["db_backend_pid"])
        for data in (get_json(server, "/whoami") for _ in range(n))
    ]


def test_one_thread_with_persistent_connections_reuses_one_connection(tmp_path: Path) -> None:
    with harness(tmp_path, "single", DJANGO_CONN_MAX_AGE="None") as server:
        series = _whoami_series(server)
        assert [conn for conn, _ in series] == ["new", "reused", "reused"]
        assert len({pid for _, pid in series}) == 1
        assert get_json(server, "/db")["conn"] == "reused"
        assert get_json(server, "/whoami")["mode"] is None  # not under cserver


def test_conn_max_age_zero_opens_a_connection_per_request(tmp_path: Path) -> None:
    with harness(tmp_path, "single") as server:
        series = _whoami_series(server)
        assert [conn for conn, _ in series] == ["new", "new", "new"]
        assert len({pid for _, pid in series}) == 3


def test_thread_per_connection_cannot_reuse_even_when_persistent(tmp_path: Path) -> None:
    with harness(tmp_path, "threaded", DJANGO_CONN_MAX_AGE="None") as server:
        assert [conn for conn, _ in _whoami_series(server)] == ["new", "new", "new"]


@pytest.mark.postgres
def test_postgres_backend_pid_and_reuse(tmp_path: Path, pg: Any, pg_db: str) -> None:
    url = pg.database_url(pg_db)
    with harness(tmp_path, "single", DATABASE_URL=url, DJANGO_CONN_MAX_AGE="None") as server:
        series = _whoami_series(server)
        assert [conn for conn, _ in series] == ["new", "reused", "reused"]
        pids = {pid for _, pid in series}
        assert len(pids) == 1
        (pid,) = pids
        assert isinstance(pid, int)
        assert pid in {session.pid for session in pg.sessions(pg_db)}
        assert get_json(server, "/whoami")["db_vendor"] == "postgresql"


@pytest.mark.postgres
@pytest.mark.skipif(django.VERSION < (5, 1), reason="Django's PostgreSQL pool is new in 5.1")
def test_postgres_pool_hands_out_pooled_sessions(tmp_path: Path, pg: Any, pg_db: str) -> None:
    url = pg.database_url(pg_db)
    with harness(tmp_path, "single", DATABASE_URL=url, DJANGO_DB_POOL="true") as server:
        series = _whoami_series(server, 8)
        # Django checks a connection out of the pool per request ("new" to Django) ...
        assert [conn for conn, _ in series] == ["new"] * 8
        # ... but the pool (4 sessions by default) hands the same PostgreSQL sessions out again.
        assert len({pid for _, pid in series}) < 8
        assert get_json(server, "/counter/safe?sleep_ms=0")["safe"] == 1

"""Secrets never reach the server's log or its error responses, even when requests fail."""

from __future__ import annotations

import json

import pytest

from testkit.serverproc import get, project_env, start_server
from tests.hostile.wire import exchange, first_status

PASSWORD = "Pw_s3cr3t_9f8e7d"
SECRET_KEY = "tests-only-not-secret"  # tests.project.settings.SECRET_KEY


@pytest.mark.postgres
@pytest.mark.parametrize("debug", ["0", "1"])
def test_database_password_and_secret_key_stay_out_of_logs(pg, pg_db, debug: str) -> None:
    # The throwaway cluster trusts local connections, so any password works: the point is
    # that it is configured, and then never shown.
    url = pg.database_url(pg_db).replace("://postgres@", f"://postgres:{PASSWORD}@")
    assert PASSWORD in url
    env = project_env({"DATABASE_URL": url, "DJANGO_CONN_MAX_AGE": "None", "TEST_DEBUG": debug})
    bodies = []
    with start_server(["--mode", "pool", "--workers", "1"], env=env) as server:
        status, _, body = get(server.url("/db"))
        assert status == 200
        # Kill the worker's database session: its next request fails inside Django.
        assert pg.terminate(json.loads(body)["backend"])
        status, _, body = get(server.url("/db"))
        assert status == 500
        if debug == "0":
            bodies.append(body)
        for bad in (
            b"GET /\r\n",
            b"\x16\x03\x01\x00",
            b"POST /db HTTP/1.1\r\nContent-Length: x\r\n\r\n",
        ):
            response = exchange(server.port, bad, timeout=5)
            assert first_status(response) == 400
            bodies.append(response)
        server.stop()
        output = server.output()
    if debug == "1":  # Django logs the failure, with its traceback, to the console
        assert "Internal Server Error: /db" in output
    for secret in (PASSWORD, SECRET_KEY):
        assert secret not in output
        assert all(secret.encode() not in body for body in bodies)

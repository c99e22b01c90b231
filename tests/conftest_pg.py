"""pytest fixtures for a throwaway PostgreSQL cluster (plugin loaded from tests/conftest.py)."""

from __future__ import annotations

import itertools
import os
import re
import warnings
from collections.abc import Iterator

import pytest

from testkit.pgcluster import PgCluster, PgStartError, PgUnavailable

_db_counter = itertools.count(1)


def _require_postgres() -> bool:
    """True when CI demands a real PostgreSQL: then a missing cluster is a failure, not a skip."""
    return os.environ.get("CSERVER_REQUIRE_POSTGRES", "") == "1"


@pytest.fixture(scope="session")
def pg() -> Iterator[PgCluster]:
    """One PostgreSQL cluster for the whole test session, stopped and deleted at the end."""
    try:
        cluster = PgCluster().start()
    except (PgUnavailable, PgStartError, OSError) as exc:
        reason = f"PostgreSQL not available: {exc}"
        if _require_postgres():
            pytest.fail(f"{reason} (CSERVER_REQUIRE_POSTGRES=1)", pytrace=False)
        pytest.skip(reason)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def pg_db(pg: PgCluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh empty database for one test; its name is returned and it is dropped afterwards."""
    # Readable in pg_stat_activity and unique within the session; identifiers max 63 bytes.
    slug = re.sub(r"[^a-z0-9]+", "_", request.node.name.lower()).strip("_")
    name = f"t{next(_db_counter)}_{slug}"[:63]
    pg.create_database(name)
    try:
        yield name
    finally:
        try:
            pg.drop_database(name)
        except Exception as exc:  # a broken cluster must not hide the test's own result
            warnings.warn(f"could not drop test database {name}: {exc}", stacklevel=1)

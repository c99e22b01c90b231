from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from testkit.serverproc import ROOT, server_env

pytest_plugins = ["tests.conftest_pg"]


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo SQLite database, migrated once per session; copy it for tests that write."""
    tmp = tmp_path_factory.mktemp("demo-db")
    env = server_env(tmp=tmp)
    subprocess.run(
        [sys.executable, "-m", "cserver", "migrate", "--noinput", "-v", "0"],
        env=env,
        cwd=ROOT,
        check=True,
        timeout=120,
    )
    return tmp / "demo.sqlite3"


@pytest.fixture
def demo_env(migrated_sqlite: Path, tmp_path: Path) -> dict[str, str]:
    """Environment for a demo server with its own copy of a migrated SQLite database."""
    db = tmp_path / "demo.sqlite3"
    db.write_bytes(migrated_sqlite.read_bytes())
    return server_env({"CSERVER_DEMO_SQLITE": str(db)})

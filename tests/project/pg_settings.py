"""tests.project.settings with the PostgreSQL lifecycle views; TEST_STARTUP_QUERY=1 adds a
middleware that leaves a database connection open in the server process."""

import os

from tests.project.settings import *  # noqa: F403

ROOT_URLCONF = "tests.project.pg_urls"
if os.environ.get("TEST_STARTUP_QUERY") == "1":
    MIDDLEWARE = ["tests.project.pg_views.StartupQueryMiddleware"]

"""The original packages' settings names, still honoured."""

from tests.project.settings import *  # noqa: F403

CONCURRENT_THREADING = False
CONCURRENT_RANDOM_DELAY = True
CSERVER = {"delay_min_ms": 5, "delay_max_ms": 10}

"""The test project for load runs: request lines are not logged, warnings and errors are."""

from tests.project.settings import *  # noqa: F403
from tests.project.settings import LOGGING

LOGGING["loggers"]["django.server"]["level"] = "WARNING"

"""tests.project with the user's own LOGGING for django.server: a file, a format, a filter.

The request log hand-off must leave such a configuration in charge: its handler receives
every line, and a logger filter still runs on the request's own thread.
"""

import os
import threading

from tests.project.settings import *  # noqa: F403


class MarkRequestThread:
    """A logger filter recording the thread it ran on (the writer thread would be wrong)."""

    def filter(self, record):
        record.filter_thread = threading.current_thread().name
        return True


LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"mark": {"()": MarkRequestThread}},
    "formatters": {
        "plain": {"format": "%(levelname)s|%(threadName)s|%(filter_thread)s|%(message)s"},
    },
    "handlers": {
        "file": {
            "class": "logging.FileHandler",
            "filename": os.environ["TEST_REQUEST_LOG"],
            "formatter": "plain",
        },
    },
    "loggers": {
        "django.server": {
            "handlers": ["file"],
            "filters": ["mark"],
            "level": "INFO",
            "propagate": False,
        },
    },
}

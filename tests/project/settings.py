"""A minimal project for the server tests: views that report concurrency from the inside."""

import os
from pathlib import Path

DEBUG = os.environ.get("TEST_DEBUG", "1") == "1"
SECRET_KEY = "tests-only-not-secret"
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "tests.project.urls"
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.staticfiles",
    "cserver",
    "tests.project",
]
MIDDLEWARE: list[str] = []
STATIC_URL = "static/"
STATICFILES_DIRS = [Path(__file__).parent / "static"]
USE_TZ = True

if os.environ.get("DATABASE_URL", "").startswith("postgres"):
    from cserver.demo.dburl import parse_database_url

    DATABASES = {"default": parse_database_url(os.environ["DATABASE_URL"])}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("TEST_SQLITE", ":memory:"),
        }
    }
_max_age = os.environ.get("DJANGO_CONN_MAX_AGE", "0")
DATABASES["default"]["CONN_MAX_AGE"] = None if _max_age.lower() == "none" else int(_max_age)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = os.environ.get("DJANGO_CONN_HEALTH_CHECKS") == "1"
if os.environ.get("DJANGO_DB_POOL") == "1":
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django.server": {"handlers": ["console"], "level": "INFO", "propagate": False}},
}

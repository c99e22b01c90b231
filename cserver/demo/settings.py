"""Settings of the demo project; everything comes from environment variables (see env.py).

DATABASE_URL             postgres://USER:PASSWORD@HOST:PORT/NAME[?sslmode=...] or sqlite:///PATH
CSERVER_DEMO_SQLITE      SQLite file when DATABASE_URL is unset (default ./cserver-demo.sqlite3)
DJANGO_CONN_MAX_AGE      seconds, or None to keep connections open (default 0)
DJANGO_CONN_HEALTH_CHECKS  true/false (default false)
DJANGO_DB_POOL           true -> psycopg connection pool, PostgreSQL only (default false)
DJANGO_DEBUG             true/false (default true)
DJANGO_ALLOWED_HOSTS     comma-separated (default *)
DJANGO_SECRET_KEY        (default: an insecure key fit only for local development)
DJANGO_LOG_LEVEL         django.server request log level; WARNING hides it (default INFO)
"""

from __future__ import annotations

from cserver.demo.env import database_settings, load_demo_env

_env = load_demo_env()

SECRET_KEY = _env.secret_key
DEBUG = _env.debug
ALLOWED_HOSTS = _env.allowed_host_list

INSTALLED_APPS = [
    "django.contrib.staticfiles",
    "django.contrib.contenttypes",
    "cserver",
    "cserver.demo",
]

# None at all: every middleware costs time on /hello, the benchmark view. (No CSRF middleware
# either: the counter views take POSTs from ab/wrk/curl; this demo has no sessions or forms.)
MIDDLEWARE: list[str] = []

ROOT_URLCONF = "cserver.demo.urls"
WSGI_APPLICATION = "cserver.demo.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": []},
    }
]

DATABASES = {"default": database_settings(_env)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

STATIC_URL = "static/"

USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"
USE_I18N = False

_LOG_LEVEL = _env.log_level

# The request log ("[date] "GET /hello HTTP/1.1" 200 13") on the console, as runserver shows it.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "django.server": {
            "()": "django.utils.log.ServerFormatter",
            "format": "[{server_time}] {message}",
            "style": "{",
        }
    },
    "handlers": {
        "django.server": {"class": "logging.StreamHandler", "formatter": "django.server"},
    },
    "loggers": {
        "django.server": {"handlers": ["django.server"], "level": _LOG_LEVEL, "propagate": False},
    },
}

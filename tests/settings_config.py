"""Tiny Django settings for the cserver_config command tests (not the demo project).

CONFIG_TEST_SETTINGS may hold a JSON object of extra settings, so a test can give a real
settings module the legacy names (CONCURRENT_THREADING, RUNSERVER_DEFAULT_PORT, ...).
"""

import json
import os

SECRET_KEY = "cserver-config-tests-not-secret"
DEBUG = True
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = ["cserver"]
DATABASES: dict = {}
USE_TZ = True

globals().update(json.loads(os.environ.get("CONFIG_TEST_SETTINGS", "{}")))

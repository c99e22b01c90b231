"""The demo's settings with daphne first in INSTALLED_APPS: `runserver` becomes daphne's.

daphne's app overrides Django's `runserver` command with one that serves ASGI_APPLICATION
through daphne (Django's own documented way to develop with daphne).
"""

from cserver.demo.settings import *  # noqa: F403
from cserver.demo.settings import INSTALLED_APPS

INSTALLED_APPS = ["daphne", *INSTALLED_APPS]
ASGI_APPLICATION = "cserver.demo.asgi.application"

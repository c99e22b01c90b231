"""WSGI entry point of the demo, for comparing servers: `gunicorn cserver.demo.wsgi`."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cserver.demo.settings")

application = get_wsgi_application()

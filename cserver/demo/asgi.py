"""ASGI entry point of the demo, for comparing servers: `uvicorn cserver.demo.asgi:application`."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cserver.demo.settings")

application = get_asgi_application()

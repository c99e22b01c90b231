"""WSGI entry point of the test project, for comparing cserver with other servers by hand."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.project.settings")
application = get_wsgi_application()

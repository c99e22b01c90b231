"""A project laid out like a real team's: what `cserver init` has to get right on it.

Settings split into a package: `realproj.settings.dev` (manage.py's default) imports
`base`, which takes its database engine from DJANGO_DB_ENGINE (no default: importing fails
without it), needs an API token from the environment, and keeps media at an absolute path;
the sibling `ci` module, which nothing imports, sets other paths. The home page reads a row
that only the project's fixture provides. An existing .dockerignore lists the project's own
entries. Dependencies come from pyproject.toml and uv.lock, with a dev group.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

API_TOKEN_VAR = "REALPROJ_API_TOKEN"
MEDIA_ROOT = "/home/app/media"
OWN_DOCKERIGNORE = "# the project's own\ndumps/\ndist/\n*.sql.gz\n"

MANAGE = """\
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "realproj.settings.dev")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
"""

BASE = f"""\
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent.parent
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "realproj-development-key")
API_TOKEN = os.environ["{API_TOKEN_VAR}"]
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.staticfiles",
    "catalog",
]
ROOT_URLCONF = "realproj.urls"
DATABASES = {{
    "default": {{
        "ENGINE": os.environ["DJANGO_DB_ENGINE"],
        "NAME": os.environ.get("DJANGO_DB_NAME", str(BASE_DIR / "db.sqlite3")),
    }}
}}
STATIC_URL = "static/"
MEDIA_ROOT = "{MEDIA_ROOT}"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
"""

DEV = """\
from .base import *  # noqa: F403

DEBUG = True
"""

# A sibling nothing imports: its paths must not reach the stack.
CI = """\
from .base import *  # noqa: F403

MEDIA_ROOT = BASE_DIR / "ci-media"
STATIC_ROOT = BASE_DIR / "ci-static"
"""

URLS = """\
from django.urls import path

from catalog import views

urlpatterns = [path("", views.home), path("db", views.database)]
"""

MODELS = """\
from django.db import models


class Category(models.Model):
    name = models.CharField(max_length=100)
"""

MIGRATION = """\
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    dependencies = []
    operations = [
        migrations.CreateModel(
            name="Category",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False)),
                ("name", models.CharField(max_length=100)),
            ],
        ),
    ]
"""

VIEWS = """\
from django.conf import settings
from django.db import connection
from django.http import JsonResponse

from .models import Category


def home(request):
    # A 500 until the fixture is loaded: the project cannot render without its data.
    category = Category.objects.get(pk=1)
    return JsonResponse({"category": category.name, "vendor": connection.vendor})


def database(request):
    default = settings.DATABASES["default"]
    token = bool(settings.API_TOKEN)
    return JsonResponse({"engine": default["ENGINE"], "host": default.get("HOST"), "token": token})
"""

FIXTURE = '[{"model": "catalog.category", "pk": 1, "fields": {"name": "Books"}}]\n'

PYPROJECT = """\
[project]
name = "realproj"
version = "0.1.0"
requires-python = ">=3.11"
dependencies = ["Django>=5.2", "psycopg[binary]>=3.2"]

[dependency-groups]
dev = ["coverage>=7"]
"""


def write_realproj(base: Path, lock: bool = False) -> Path:
    """The project under base/realproj; with lock, its uv.lock too (needs the index)."""
    root = base / "realproj"
    files = {
        "manage.py": MANAGE,
        "pyproject.toml": PYPROJECT,
        ".dockerignore": OWN_DOCKERIGNORE,
        "realproj/__init__.py": "",
        "realproj/urls.py": URLS,
        "realproj/settings/__init__.py": "",
        "realproj/settings/base.py": BASE,
        "realproj/settings/dev.py": DEV,
        "realproj/settings/ci.py": CI,
        "catalog/__init__.py": "",
        "catalog/models.py": MODELS,
        "catalog/views.py": VIEWS,
        "catalog/migrations/__init__.py": "",
        "catalog/migrations/0001_initial.py": MIGRATION,
        "catalog/fixtures/categories.json": FIXTURE,
    }
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    if lock:
        subprocess.run(
            [sys.executable, "-m", "uv", "lock", "--quiet", "--directory", str(root)],
            check=True,
            timeout=300,
            env={**os.environ, "UV_PYTHON_DOWNLOADS": "never"},
        )
    return root

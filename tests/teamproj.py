"""A team's project: web, a Celery worker and beat, Redis as broker, result store and cache, and
an npm watch script that builds the CSS web serves.

A view enqueues a task that writes a row (its value comes from TASK_VALUE in jobs/tasks.py, so
an edit of the task body shows which code ran); another view reads it back. Redis comes from
REDIS_URL (localhost by default, as a project written for a laptop would have it). The asset
build is a small node script (no npm packages): it copies assets/app.src.css to
static/dist/app.css, stamped, and again on every change under --watch.
"""

from __future__ import annotations

import json
from pathlib import Path

MANAGE = """\
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "teamproj.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
"""

SETTINGS = """\
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "teamproj-development-key"
DEBUG = True
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.staticfiles",
    "jobs",
]
ROOT_URLCONF = "teamproj.urls"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("TEAMPROJ_SQLITE", str(BASE_DIR / "db.sqlite3")),
        "OPTIONS": {"timeout": 20},
    }
}
REDIS_URL = os.environ.get("REDIS_URL", "redis://localhost:6379/0")
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_BEAT_SCHEDULE = {
    "heartbeat": {"task": "jobs.tasks.heartbeat", "schedule": 60.0},
}
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
    }
}
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
"""

CELERY_APP = """\
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "teamproj.settings")

app = Celery("teamproj")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
"""

PACKAGE_INIT = """\
from .celery import app as celery_app

__all__ = ("celery_app",)
"""

URLS = """\
from django.urls import path

from jobs import views

urlpatterns = [
    path("enqueue", views.enqueue),
    path("result", views.result),
    path("cache", views.cache_roundtrip),
]
"""

MODELS = """\
from django.db import models


class Result(models.Model):
    key = models.CharField(max_length=100, unique=True)
    value = models.CharField(max_length=100)
"""

MIGRATION = """\
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    dependencies = []
    operations = [
        migrations.CreateModel(
            name="Result",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False)),
                ("key", models.CharField(max_length=100, unique=True)),
                ("value", models.CharField(max_length=100)),
            ],
        ),
    ]
"""

TASKS = """\
from celery import shared_task
from django.db import connection

from .models import Result

TASK_VALUE = "{value}"


@shared_task
def record(key):
    Result.objects.update_or_create(key=key, defaults={{"value": TASK_VALUE}})
    return connection.vendor


@shared_task
def heartbeat():
    return "ok"
"""

VIEWS = """\
from django.core.cache import cache
from django.http import JsonResponse

from .models import Result
from .tasks import record


def enqueue(request):
    key = request.GET["key"]
    task = record.delay(key)
    return JsonResponse({"task": task.id})


def result(request):
    row = Result.objects.filter(key=request.GET["key"]).first()
    return JsonResponse({"value": row.value if row else None})


def cache_roundtrip(request):
    cache.set("teamproj-probe", "cached", 30)
    return JsonResponse({"cache": cache.get("teamproj-probe")})
"""

BUILD_SCRIPT = """\
// Copies assets/app.src.css to the output directory, stamped; with --watch, on every change.
const fs = require("fs");
const path = require("path");

const args = process.argv.slice(2);
const outdir = args[args.indexOf("--outdir") + 1];
const source = path.join("assets", "app.src.css");

function build() {
  fs.mkdirSync(outdir, { recursive: true });
  const css = fs.readFileSync(source, "utf8");
  fs.writeFileSync(path.join(outdir, "app.css"), `/* built ${Date.now()} */\\n${css}`);
  console.log(`built ${path.join(outdir, "app.css")}`);
}

build();
if (args.includes("--watch")) {
  let timer = null;
  fs.watch("assets", () => {
    clearTimeout(timer);
    timer = setTimeout(build, 50);
  });
  console.log("watching assets/");
}
"""

PACKAGE_JSON = {
    "name": "teamproj",
    "private": True,
    "scripts": {
        "build": "node build.js --outdir static/dist",
        "watch": "node build.js --watch --outdir static/dist",
    },
}

REQUIREMENTS = "Django>=4.2\ncelery>=5.4\nredis>=5\npsycopg[binary]>=3.2\n"
CSS = "body { color: rebeccapurple; }\n"


def write_teamproj(base: Path, task_value: str = "first") -> Path:
    """The project under base/teamproj."""
    root = base / "teamproj"
    files = {
        "manage.py": MANAGE,
        "requirements.txt": REQUIREMENTS,
        "package.json": json.dumps(PACKAGE_JSON, indent=2) + "\n",
        "build.js": BUILD_SCRIPT,
        "assets/app.src.css": CSS,
        "teamproj/__init__.py": PACKAGE_INIT,
        "teamproj/celery.py": CELERY_APP,
        "teamproj/settings.py": SETTINGS,
        "teamproj/urls.py": URLS,
        "jobs/__init__.py": "",
        "jobs/models.py": MODELS,
        "jobs/tasks.py": TASKS.format(value=task_value),
        "jobs/views.py": VIEWS,
        "jobs/migrations/__init__.py": "",
        "jobs/migrations/0001_initial.py": MIGRATION,
    }
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (root / "static").mkdir(exist_ok=True)
    return root


def set_task_value(root: Path, value: str) -> None:
    """Edit the task body: the next task run reports value."""
    (root / "jobs" / "tasks.py").write_text(TASKS.format(value=value))

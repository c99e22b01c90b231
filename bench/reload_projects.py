"""The projects bench/reload.py reloads: a minimal one, and one with Django's usual apps."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from testkit.files import write_later

MINIMAL_SETTINGS = """
DEBUG = True
SECRET_KEY = "reload-bench"
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "benchproj.urls"
INSTALLED_APPS = ["cserver"]
MIDDLEWARE = []
DATABASES = {}
"""
APPS_SETTINGS = """
from pathlib import Path
BASE_DIR = Path(__file__).resolve().parent.parent
DEBUG = True
SECRET_KEY = "reload-bench"
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "benchproj.urls"
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "cserver",
    "shop",
    "blog",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "DIRS": [],
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": [
        "django.template.context_processors.request",
        "django.contrib.auth.context_processors.auth",
        "django.contrib.messages.context_processors.messages",
    ]},
}]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "db.sqlite3"}}
STATIC_URL = "static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
"""
MINIMAL_URLS = """
from django.urls import path
from benchproj import views
urlpatterns = [path("version", views.version)]
"""
APPS_URLS = """
from django.contrib import admin
from django.urls import path
from benchproj import views
urlpatterns = [path("version", views.version), path("admin/", admin.site.urls)]
"""
VIEWS = """
from django.http import HttpResponse
def version(request):
    return HttpResponse("version {version}", content_type="text/plain")
"""
MODELS = """
from django.db import models
class {a}(models.Model):
    name = models.CharField(max_length=100)
    created = models.DateTimeField(auto_now_add=True)
class {b}(models.Model):
    title = models.CharField(max_length=200)
    parent = models.ForeignKey({a}, on_delete=models.CASCADE)
    tags = models.JSONField(default=list)
class {c}(models.Model):
    owner = models.ForeignKey("auth.User", on_delete=models.CASCADE)
    items = models.ManyToManyField({b})
"""
ADMIN = """
from django.contrib import admin
from .models import {a}, {b}, {c}
admin.site.register([{a}, {b}, {c}])
"""
APPS = {"shop": ("Customer", "Order", "Basket"), "blog": ("Author", "Post", "Reading")}
PROJECTS = ("minimal", "apps")


def make_project(base: Path, kind: str) -> None:
    package = base / "benchproj"
    package.mkdir()
    (package / "__init__.py").write_text("")
    apps = kind == "apps"
    (package / "settings.py").write_text(APPS_SETTINGS if apps else MINIMAL_SETTINGS)
    (package / "urls.py").write_text(APPS_URLS if apps else MINIMAL_URLS)
    write_version(base, 0)
    if not apps:
        return
    for app, (a, b, c) in APPS.items():
        (base / app).mkdir()
        (base / app / "__init__.py").write_text("")
        (base / app / "models.py").write_text(MODELS.format(a=a, b=b, c=c))
        (base / app / "admin.py").write_text(ADMIN.format(a=a, b=b, c=c))


def prepare(base: Path, kind: str, env: dict[str, str]) -> None:
    """Migrations made and applied, as in a project someone works on."""
    if kind != "apps":
        return
    for command in (["makemigrations", "shop", "blog"], ["migrate"]):
        subprocess.run(
            [sys.executable, "-m", "django", *command, "-v", "0"],
            cwd=base,
            env=env,
            check=True,
            timeout=300,
        )


def write_version(base: Path, version: int) -> None:
    write_later(base / "benchproj" / "views.py", VIEWS.format(version=version))

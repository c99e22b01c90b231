"""`cserver init` on projects built here, each served by its generated stack on a real engine.

Three projects, as a team would have them: startproject + a polls app with requirements.txt
(Python 3.13, settings that never read DATABASE_URL); a Django 5.1 project that reads
DATABASE_URL with dj-database-url and uses psycopg2-binary (Python 3.11); a pyproject.toml
project with a src/ layout and a uv.lock (Python 3.13). For each: init, doctor, `up --wait`,
a page that queries PostgreSQL, web's session in pg_stat_activity, an edit synced by
`docker compose watch` and served without a rebuild, and `down -v` leaving nothing behind.
"""

from __future__ import annotations

import contextlib
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from testkit.cli import run_cserver
from tests.docker.conftest import BUILD_TIMEOUT, clean_environ, free_port, wait_for

HELLO_V1 = "hello from polls v1"
HELLO_V2 = "hello from polls v2"

MODELS = """\
from django.db import models


class Question(models.Model):
    question_text = models.CharField(max_length=200)
    pub_date = models.DateTimeField("date published")


class Choice(models.Model):
    question = models.ForeignKey(Question, on_delete=models.CASCADE)
    choice_text = models.CharField(max_length=200)
    votes = models.IntegerField(default=0)
"""

MIGRATION = """\
import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    dependencies = []
    operations = [
        migrations.CreateModel(
            name="Question",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False)),
                ("question_text", models.CharField(max_length=200)),
                ("pub_date", models.DateTimeField(verbose_name="date published")),
            ],
        ),
        migrations.CreateModel(
            name="Choice",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False)),
                ("choice_text", models.CharField(max_length=200)),
                ("votes", models.IntegerField(default=0)),
                (
                    "question",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, to="polls.question"
                    ),
                ),
            ],
        ),
    ]
"""

VIEWS = f"""\
import django
from django.db import connection
from django.http import HttpResponse, JsonResponse
from django.utils import timezone

from .models import Question


def index(request):
    if not Question.objects.exists():
        Question.objects.create(question_text="What's new?", pub_date=timezone.now())
    return JsonResponse(
        {{
            "questions": [q.question_text for q in Question.objects.all()],
            "vendor": connection.vendor,
            "django": django.get_version(),
        }}
    )


def slow(request):
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_sleep(%s)", [float(request.GET.get("s", "3"))])
    return HttpResponse("slept")


def hello(request):
    return HttpResponse("{HELLO_V1}")
"""

URLS = """\
from django.urls import path

from . import views

urlpatterns = [
    path("", views.index),
    path("slow", views.slow),
    path("hello", views.hello),
]
"""


@dataclass
class Project:
    """A project directory and what the test expects of its stack."""

    root: Path
    code_root: Path  # where the settings package and polls live (root or root/src)
    python: str
    django_prefix: str
    # A dependency file to change under watch, checking that it rebuilds the image (one
    # project does it: each rebuild costs a build).
    rebuild_on: str | None = None


def _django_admin_startproject(name: str, where: Path) -> None:
    where.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "django", "startproject", name, str(where)],
        check=True,
        timeout=60,
    )


def _add_polls(code_root: Path, package: str) -> None:
    """The tutorial's polls app, wired into the project's settings and URLs."""
    polls = code_root / "polls"
    (polls / "migrations").mkdir(parents=True)
    (polls / "__init__.py").write_text("")
    (polls / "migrations" / "__init__.py").write_text("")
    (polls / "migrations" / "0001_initial.py").write_text(MIGRATION)
    (polls / "models.py").write_text(MODELS)
    (polls / "views.py").write_text(VIEWS)
    (polls / "urls.py").write_text(URLS)
    settings = code_root / package / "settings.py"
    settings.write_text(settings.read_text() + '\nINSTALLED_APPS += ["polls"]\n')
    urls = code_root / package / "urls.py"
    urls.write_text(
        urls.read_text()
        + "\nfrom django.urls import include\n\n"
        + 'urlpatterns += [path("polls/", include("polls.urls"))]\n'
    )


def requirements_project(base: Path) -> Project:
    """startproject + polls + requirements.txt, Python 3.13 from .python-version."""
    root = base / "mysite"
    _django_admin_startproject("mysite", root)
    _add_polls(root, "mysite")
    (root / "requirements.txt").write_text("Django>=5.2\n")
    (root / ".python-version").write_text("3.13\n")
    return Project(root, root, "3.13", "", rebuild_on="requirements.txt")


def django51_project(base: Path) -> Project:
    """Django 5.1, DATABASE_URL through dj-database-url, psycopg2-binary, Python 3.11."""
    root = base / "legacy"
    _django_admin_startproject("legacy", root)
    _add_polls(root, "legacy")
    settings = root / "legacy" / "settings.py"
    settings.write_text(
        settings.read_text()
        + "\nimport dj_database_url\n\n"
        + 'DATABASES = {"default": dj_database_url.config('
        + "default=f\"sqlite:///{BASE_DIR / 'db.sqlite3'}\")}\n"
    )
    (root / "requirements.txt").write_text(
        "Django>=5.1,<5.2\ndj-database-url>=2.2\npsycopg2-binary>=2.9\n"
    )
    (root / ".python-version").write_text("3.11\n")
    return Project(root, root, "3.11", "5.1.")


def src_layout_project(base: Path) -> Project:
    """pyproject.toml, src/ layout, uv.lock; requires-python >=3.11 (init picks 3.13)."""
    root = base / "shop"
    src = root / "src"
    _django_admin_startproject("shop", src)
    _add_polls(src, "shop")
    manage = (src / "manage.py").read_text()
    (src / "manage.py").unlink()
    (root / "manage.py").write_text(
        manage.replace(
            "import sys\n",
            "import sys\n\nsys.path.insert(0, os.path.join(os.path.dirname(__file__), 'src'))\n",
            1,
        )
    )
    (root / "pyproject.toml").write_text(
        '[project]\nname = "shop"\nversion = "0.1.0"\nrequires-python = ">=3.11"\n'
        'dependencies = ["Django>=5.2", "psycopg[binary]>=3.2"]\n'
    )
    subprocess.run(
        [sys.executable, "-m", "uv", "lock", "--quiet", "--directory", str(root)],
        check=True,
        timeout=300,
        env={**clean_environ(), "UV_PYTHON_DOWNLOADS": "never"},
    )
    assert (root / "uv.lock").is_file()
    return Project(root, src, "3.13", "")


BUILDERS = {
    "requirements-py313": requirements_project,
    "django51-dburl-py311": django51_project,
    "src-layout-uvlock-py313": src_layout_project,
}


def share_with_containers(tree: Path) -> None:
    """Readable by the container user when compose syncs or builds from it."""
    for path in [tree, *tree.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)


class ProjectStack:
    """`docker compose -p UNIQUE` on a project's generated compose.yaml."""

    def __init__(self, project: Project) -> None:
        import docker

        self.project = project
        self.name = f"cserver-init-{secrets.token_hex(4)}"
        self.port = free_port()
        self.env = {
            **clean_environ(),
            "CSERVER_IMAGE": f"{self.name}-img",
            "CSERVER_HOST_PORT": str(self.port),
            "CSERVER_HEALTHCHECK_INTERVAL": "1s",
            "DOCKER_BUILDKIT": "1",
            # For commands run without -p (cserver doctor): the same compose project.
            "COMPOSE_PROJECT_NAME": self.name,
        }
        self.client = docker.from_env(timeout=60)

    def argv(self, *args: str) -> list[str]:
        return ["docker", "compose", "-p", self.name, "-f", "compose.yaml", *args]

    def compose(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            self.argv(*args),
            cwd=self.project.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert proc.returncode == 0, (
            f"{args} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        )
        return proc

    def _label(self) -> dict[str, str]:
        return {"label": f"com.docker.compose.project={self.name}"}

    def containers(self) -> list[Any]:
        return list(self.client.containers.list(all=True, filters=self._label()))

    def volumes(self) -> list[Any]:
        return list(self.client.volumes.list(filters=self._label()))

    def container(self, service: str) -> Any:
        [found] = [
            c for c in self.containers() if c.labels["com.docker.compose.service"] == service
        ]
        return found

    def psql(self, sql: str) -> str:
        db = self.project.root.name
        code, out = self.container("db").exec_run(["psql", "-U", db, "-d", db, "-Atc", sql])
        assert code == 0, out
        return str(out.decode().strip())

    def get(self, path: str, timeout: float = 10) -> requests.Response:
        return requests.get(
            f"http://127.0.0.1:{self.port}{path}", timeout=timeout, headers={"Connection": "close"}
        )

    def served(self, path: str) -> str:
        try:
            return self.get(path, timeout=3).text
        except requests.RequestException:
            return ""

    def image_id(self) -> str:
        """The ID the image tag points to now ("" while a rebuild has not tagged it)."""
        import docker.errors

        try:
            return str(self.client.images.get(f"{self.env['CSERVER_IMAGE']}:latest").id)
        except docker.errors.ImageNotFound:
            return ""

    @contextlib.contextmanager
    def watching(self) -> Iterator[list[str]]:
        """`docker compose watch --no-up` while the block runs; yields its output so far."""
        watch = subprocess.Popen(
            self.argv("watch", "--no-up"),
            cwd=self.project.root,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        output: list[str] = []
        reader = threading.Thread(target=lambda: output.extend(watch.stdout or []), daemon=True)
        reader.start()
        try:
            yield output
        finally:
            watch.terminate()
            try:
                watch.wait(timeout=20)
            except subprocess.TimeoutExpired:
                watch.kill()
                watch.wait(timeout=20)
            reader.join(timeout=5)

    def remove(self) -> None:
        """down -v; whatever compose leaves (or could not remove) goes through the SDK."""
        try:
            subprocess.run(
                self.argv("down", "--volumes", "--remove-orphans", "--timeout", "5"),
                cwd=self.project.root,
                env=self.env,
                capture_output=True,
                timeout=120,
            )
        finally:
            for container in self.containers():
                container.remove(force=True, v=True)
            for volume in self.volumes():
                volume.remove(force=True)
            # The app image, and the Node.js image of an assets side process.
            for tag in (self.env["CSERVER_IMAGE"], f"{self.env['CSERVER_IMAGE']}-assets"):
                with contextlib.suppress(Exception):  # already gone, or never built
                    self.client.images.remove(f"{tag}:latest", force=True)
            self.client.close()


@contextlib.contextmanager
def stack_for(tree: Path, root: Path) -> Iterator[ProjectStack]:
    """The stack of the project at root (written under tree), removed however the block ends."""
    share_with_containers(tree)
    stack = ProjectStack(Project(root, root, "3.13", ""))
    try:
        yield stack
    finally:
        stack.remove()


@pytest.fixture(params=sorted(BUILDERS))
def project_stack(
    request: pytest.FixtureRequest, docker_engine: None, tmp_path: Path
) -> Iterator[ProjectStack]:
    """A freshly built project with `cserver init` applied; its stack removed afterwards."""
    project = BUILDERS[request.param](tmp_path)
    init = run_cserver(project.root, "init", timeout=120)
    assert init.returncode == 0, init.stderr
    assert f"python:{project.python}-slim" in init.stdout, init.stdout
    share_with_containers(tmp_path)
    stack = ProjectStack(project)
    try:
        yield stack
    finally:
        stack.remove()


def _watch_until_served(stack: ProjectStack, image: str) -> tuple[str, int, str | None]:
    """Run `docker compose watch`, edit the view until the new text is served, then change
    the project's rebuild_on file if it has one; (output, edits, image after that change)."""
    views = stack.project.code_root / "polls" / "views.py"
    text = views.read_text()
    edits = 0
    with stack.watching() as output:
        # Watch syncs only once it has set up; keep editing (new content each time) until served.
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and stack.served("/polls/hello") != HELLO_V2:
            edits += 1
            views.write_text(text.replace(HELLO_V1, HELLO_V2) + f"# edit {edits}\n")
            wait_for(lambda: stack.served("/polls/hello") == HELLO_V2, timeout=6, interval=0.3)
        assert stack.image_id() == image, "a code edit rebuilt the image"
        rebuilt = None
        if stack.project.rebuild_on and stack.served("/polls/hello") == HELLO_V2:
            deps = stack.project.root / stack.project.rebuild_on
            deps.write_text(deps.read_text() + "# a dependency change\n")

            def new_image_serving() -> str | None:
                current = stack.image_id()
                healthy = stack.served("/polls/hello") == HELLO_V2
                return current if current != image and healthy else None

            rebuilt = wait_for(new_image_serving, timeout=240, interval=1)
    return "".join(output), edits, rebuilt


def test_init_stack_serves_the_project(project_stack: ProjectStack) -> None:
    stack = project_stack
    project = stack.project
    doctor = subprocess.run(
        [sys.executable, "-m", "cserver", "doctor"],
        cwd=project.root,
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert f"127.0.0.1:{stack.port} is free" in doctor.stdout
    assert "engine is local: it runs on this machine" in doctor.stdout
    assert ".devcontainer/devcontainer.json agrees with its compose files" in doctor.stdout

    started = time.monotonic()
    stack.compose("build", "web", timeout=BUILD_TIMEOUT)
    built = time.monotonic() - started
    stack.compose("up", "-d", "--wait", timeout=240)
    up = time.monotonic() - started - built
    print(f"{project.root.name}: build {built:.1f} s, up --wait {up:.1f} s")

    # The project's page reads and writes PostgreSQL, on the Django the project pinned.
    page = stack.get("/polls/")
    assert page.status_code == 200, page.text[:2000]
    body = page.json()
    assert body["vendor"] == "postgresql" and body["questions"] == ["What's new?"]
    assert body["django"].startswith(project.django_prefix)
    python = stack.container("web").exec_run(["python", "-c", "import sys; print(sys.version)"])
    assert python.output.decode().startswith(project.python + ".")

    # While a request sleeps in PostgreSQL, the db container sees web's session doing it.
    web_ip = next(iter(stack.container("web").attrs["NetworkSettings"]["Networks"].values()))[
        "IPAddress"
    ]
    slow = threading.Thread(target=lambda: stack.get("/polls/slow?s=4", timeout=15))
    slow.start()
    try:
        sql = (
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
            f"AND client_addr = '{web_ip}' AND query LIKE '%pg_sleep%'"
        )
        assert wait_for(lambda: stack.psql(sql) == "1", timeout=10), stack.psql(
            "SELECT client_addr, state, query FROM pg_stat_activity"
        )
    finally:
        slow.join(timeout=20)

    # A view edit is synced by `docker compose watch` and served by the reloaded server,
    # with the same image: no rebuild.
    assert stack.served("/polls/hello") == HELLO_V1
    image = stack.image_id()
    output, edits, rebuilt = _watch_until_served(stack, image)
    assert stack.served("/polls/hello") == HELLO_V2, f"not served after {edits} edits\n{output}"
    if project.rebuild_on:
        # A dependency change rebuilt the image, and web serves from the new one.
        assert rebuilt is not None, f"{project.rebuild_on} changed, no rebuild\n{output}"
    else:
        assert stack.image_id() == image

    # The image has cserver's asgi extra: CSERVER_MODE=asgi is a restart, not a rebuild.
    image = stack.image_id()
    stack.env["CSERVER_MODE"] = "asgi"
    stack.compose("up", "-d", "--wait", "--no-deps", "--no-build", "web", timeout=240)
    assert stack.image_id() == image
    page = stack.get("/polls/")
    assert page.status_code == 200 and page.json()["vendor"] == "postgresql", page.text[:2000]
    logs = stack.container("web").logs().decode("utf-8", "replace")
    assert "mode=asgi" in logs, logs[-2000:]

    stack.compose("down", "-v", "--timeout", "5")
    assert stack.containers() == [] and stack.volumes() == []

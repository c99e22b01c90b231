"""`cserver init` on a project laid out like a real team's (tests/realproj.py), on a real engine.

Split settings whose default module needs DJANGO_DB_ENGINE and an API token, a sibling
settings module with other paths, an absolute MEDIA_ROOT, fixtures the home page needs, an
existing .dockerignore, a uv.lock with a dev group. Without a hand edit of what init wrote:
the dry run shows the plan, init merges, doctor names the variable .env must give, then
`up --wait` serves the page from the fixture; a plain manage.py process in `web` and a
non-cserver command in another service both see PostgreSQL; switching the settings module
reuses the dependency layer.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from testkit.cli import run_cserver
from tests.docker.conftest import BUILD_TIMEOUT
from tests.docker.test_init_projects import ProjectStack, stack_for
from tests.realproj import API_TOKEN_VAR, MEDIA_ROOT, OWN_DOCKERIGNORE, write_realproj

SHOW_DATABASE = (
    "from django.db import connection as c; c.ensure_connection(); "
    "print('db:', c.vendor, c.settings_dict['HOST'])"
)


def dependency_layer_cached(build_log: str) -> bool:
    """Whether BuildKit's plain log shows the `uv export` step as CACHED."""
    steps = re.findall(r"^#(\d+) \[[^\]]*\] RUN .*uv export", build_log, re.M)
    assert steps, f"no uv export step in the build log\n{build_log[-3000:]}"
    return all(re.search(rf"^#{step} CACHED$", build_log, re.M) for step in steps)


@pytest.fixture
def real_stack(docker_engine: None, tmp_path: Path) -> Iterator[ProjectStack]:
    root = write_realproj(tmp_path, lock=True)
    with stack_for(tmp_path, root) as stack:
        yield stack


def test_init_on_a_real_project_needs_no_hand_edit(real_stack: ProjectStack) -> None:
    stack = real_stack
    root = stack.project.root
    dry = run_cserver(root, "init", "--dry-run", env=stack.env, timeout=300)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "would merge  .dockerignore" in dry.stdout and "nothing was written" in dry.stdout
    assert not (root / "compose.yaml").exists()
    init = run_cserver(root, "init", env=stack.env, timeout=300)
    assert init.returncode == 0, init.stdout + init.stderr
    assert f"media files   {MEDIA_ROOT} on the volume 'media'" in init.stdout
    assert f"needs        {API_TOKEN_VAR} in .env" in init.stdout
    assert (root / ".dockerignore").read_text().startswith(OWN_DOCKERIGNORE)
    for path in root.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)

    build = stack.compose("--progress", "plain", "build", "web", timeout=BUILD_TIMEOUT)
    assert "--no-default-groups" in build.stdout + build.stderr
    # Built, without the token: doctor runs manage.py in the image and names the variable.
    doctor = run_cserver(root, "doctor", env=stack.env, timeout=300)
    assert doctor.returncode == 1, doctor.stdout
    [line] = [line for line in doctor.stdout.splitlines() if line.startswith("problem")]
    assert "not ready: settings realproj.settings.dev do not load in the image" in line
    assert API_TOKEN_VAR in line
    (root / ".env").write_text(f"{API_TOKEN_VAR}=token-from-dotenv\n")
    (root / ".env").chmod(0o644)
    doctor = run_cserver(root, "doctor", env=stack.env, timeout=300)
    assert doctor.returncode == 0, doctor.stdout
    assert (
        "ok      in the image, `python manage.py shell` sees the stack's database: "
        "django.db.backends.postgresql at db, database realproj"
    ) in doctor.stdout

    stack.compose("up", "-d", "--wait", timeout=300)
    # The home page needs the fixture: the bootstrap service loaded it once, after migrate.
    page = stack.get("/")
    assert page.status_code == 200, page.text[:2000]
    assert page.json() == {"category": "Books", "vendor": "postgresql"}
    info = stack.get("/db").json()
    assert info == {"engine": "django.db.backends.postgresql", "host": "db", "token": True}
    bootstrap = stack.compose("logs", "bootstrap").stdout
    assert "bootstrap: running python -m django loaddata categories" in bootstrap

    # A plain manage.py process in web (what `exec` and workers run), and another service
    # with a command that is not cserver's, both reach the stack's PostgreSQL.
    shell = stack.compose("exec", "-T", "web", "python", "manage.py", "shell", "-c", SHOW_DATABASE)
    assert "db: postgresql db" in shell.stdout
    other = stack.compose(
        "run",
        "--rm",
        "--no-deps",
        "-T",
        "migrate",
        "python",
        "-c",
        f"import django; django.setup(); {SHOW_DATABASE}",
    )
    assert "db: postgresql db" in other.stdout
    # The lock's dev group stays out of the image; the media volume is where MEDIA_ROOT is.
    dev_tool = subprocess.run(
        stack.argv("exec", "-T", "web", "python", "-c", "import coverage"),
        cwd=root,
        env=stack.env,
        capture_output=True,
        timeout=60,
    )
    assert dev_tool.returncode != 0
    stack.compose("exec", "-T", "web", "test", "-w", MEDIA_ROOT)
    [mount] = [m for m in stack.container("web").attrs["Mounts"] if m["Destination"] == MEDIA_ROOT]
    assert mount["Type"] == "volume"

    # A second `up` does not load the fixture again.
    stack.compose("up", "-d", "--wait", timeout=300)
    again = stack.compose("logs", "bootstrap").stdout
    assert "bootstrap: already done for this database" in again

    # Another settings module: init shows the change, --force keeps the old file, and the
    # rebuild reuses the dependency layer.
    switched = run_cserver(
        root, "init", "--settings", "realproj.settings.ci", env=stack.env, timeout=300
    )
    assert switched.returncode == 1 and "differs      compose.yaml" in switched.stdout
    forced = run_cserver(
        root, "init", "--settings", "realproj.settings.ci", "--force", env=stack.env, timeout=300
    )
    assert forced.returncode == 0, forced.stderr
    assert (root / "compose.yaml.orig").is_file()
    for path in root.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    rebuild = stack.compose("--progress", "plain", "build", "web", timeout=BUILD_TIMEOUT)
    assert dependency_layer_cached(rebuild.stdout + rebuild.stderr)
    recorded = (root / "compose.yaml").read_text()
    [record] = [line for line in recorded.splitlines() if line.startswith("x-cserver:")]
    assert json.loads(record.removeprefix("x-cserver:")) == {"settings": "realproj.settings.ci"}

    stack.compose("down", "-v", "--timeout", "5")
    assert stack.containers() == [] and stack.volumes() == []

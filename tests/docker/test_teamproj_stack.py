"""The whole team project in its generated stack: web, a Celery worker and beat, Redis and the
npm watcher, from `cserver init` alone (tests/teamproj.py has no compose file of its own).

A view enqueues a task; the worker runs it against the stack's PostgreSQL and the view reads
the row back. Under `docker compose watch`, an edit of the task body is the code the worker
runs next, without an image rebuild, beat restarts with it, an edit of the CSS source
changes what web serves, and a requirements edit rebuilds the image the worker then runs.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from testkit.cli import run_cserver
from tests.docker.conftest import BUILD_TIMEOUT, wait_for
from tests.docker.test_init_projects import ProjectStack, stack_for
from tests.teamproj import set_task_value, write_teamproj

LABEL = "com.docker.compose.service"
SERVICES = {"db", "migrate", "bootstrap", "web", "redis", "worker", "beat", "assets"}


@pytest.fixture
def team_stack(docker_engine: None, tmp_path: Path) -> Iterator[ProjectStack]:
    root = write_teamproj(tmp_path)
    init = run_cserver(root, "init")
    assert init.returncode == 0, init.stderr
    with stack_for(tmp_path, root) as stack:
        yield stack


def run_task(stack: ProjectStack, timeout: float = 30) -> str:
    """Enqueue a task through web and wait for the row the worker writes; its value."""
    key = secrets.token_hex(4)
    enqueued = stack.get(f"/enqueue?key={key}")
    if enqueued.status_code != 200:
        logs = stack.compose("logs", "--no-color", "--tail", "60", "web", "redis", "worker")
        pytest.fail(f"/enqueue answered {enqueued.status_code}:\n{logs.stdout}{logs.stderr}")

    def value() -> str | None:
        found = stack.get(f"/result?key={key}").json()["value"]
        return str(found) if found else None

    found = wait_for(value, timeout=timeout, interval=0.2)
    assert found, f"task {key} never ran"
    # The row is in the stack's PostgreSQL, where the worker wrote it.
    assert stack.psql(f"select value from jobs_result where key = '{key}'") == found
    return found


def test_the_team_project_runs_whole_in_its_stack(team_stack: ProjectStack) -> None:
    stack = team_stack
    started = time.monotonic()
    stack.compose("up", "--build", "--wait", "--quiet-pull", timeout=BUILD_TIMEOUT)
    print(f"up --build --wait: {time.monotonic() - started:.1f} s")
    running = {c.labels["com.docker.compose.service"] for c in stack.containers()}
    assert running == SERVICES
    assert run_task(stack) == "first"
    assert stack.get("/cache").json() == {"cache": "cached"}
    assert "rebeccapurple" in stack.get("/static/dist/app.css").text
    image = stack.image_id()
    beat_started = stack.container("beat").attrs["State"]["StartedAt"]

    with stack.watching() as output:
        # Watch syncs only once it has set up: edit again (new content each time) until the
        # worker runs the new body. A task enqueued just after the save may still go to the
        # old worker, so new tasks are sent until one reports the new value.
        deadline = time.monotonic() + 120
        edits = 0
        while time.monotonic() < deadline:
            edits += 1
            value = f"edited-{edits}"
            set_task_value(stack.project.root, value)
            if wait_for(lambda: run_task(stack) == value, timeout=20, interval=0.3):  # noqa: B023
                break
        else:
            pytest.fail("the edited task never ran:\n" + "".join(output))
        assert stack.image_id() == image, "a code edit rebuilt the image"
        # The schedule is code too: beat was restarted by the same edit.
        assert wait_for(
            lambda: stack.container("beat").attrs["State"]["StartedAt"] != beat_started,
            timeout=30,
        ), "".join(output)
        css = stack.project.root / "assets" / "app.src.css"
        css.write_text("body { color: teal; }\n")
        assert wait_for(
            lambda: "teal" in stack.served("/static/dist/app.css"), timeout=30, interval=0.5
        ), "".join(output)
        # A dependency change rebuilds through web's rule alone, and compose recreates every
        # service of that image: the worker runs tasks from the new image.
        requirements = stack.project.root / "requirements.txt"
        requirements.write_text(requirements.read_text() + "# a dependency change\n")
        rebuilt = wait_for(lambda: stack.image_id() not in ("", image), timeout=240, interval=1)
        assert rebuilt, "".join(output)
        new_image = stack.image_id()
        project = f"com.docker.compose.project={stack.name}"

        def worker_on_new_image() -> bool:
            # One listing call (no per-container inspect, which races a recreation); compose
            # briefly holds two containers for the service while it recreates it.
            listed = stack.client.api.containers(filters={"label": [project, f"{LABEL}=worker"]})
            running = [c["ImageID"] for c in listed if c["State"] == "running"]
            return running == [new_image]

        assert wait_for(worker_on_new_image, timeout=120, interval=1), "".join(output)
        assert wait_for(lambda: "cached" in stack.served("/cache"), timeout=60, interval=0.5)
        assert run_task(stack, timeout=60) == f"edited-{edits}"
    running = {c.labels["com.docker.compose.service"]: c.status for c in stack.containers()}
    assert {s for s, status in running.items() if status == "running"} >= SERVICES - {
        "migrate",
        "bootstrap",
    }, running

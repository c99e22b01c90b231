"""The dev environment's files for a detected project, rendered from the package's templates."""

from __future__ import annotations

import re
from importlib import resources

from cserver import __version__
from cserver.stack.detect import DEFAULT_DRIVER, Overrides, Project
from cserver.stack.devcontainer import (
    DEVCONTAINER_COMPOSE,
    DEVCONTAINER_JSON,
    compose_override,
    devcontainer_config,
    render_devcontainer,
)
from cserver.stack.envdoc import CONTAINER_PORT, compose_environment_lines, env_example_lines
from cserver.stack.envmap import project_variables
from cserver.stack.recorded import record_line
from cserver.stack.services import ASSETS_DOCKERFILE, REDIS_URL, shared_outputs, side_services
from cserver.stack.wheel import build_wheel, wheel_name

# A line holding nothing but a block tag ({% if %}, {% endfor %}, ...) leaves no line behind.
_TAG_LINE = re.compile(r"^[ \t]*(\{%[^%]*%\})[ \t]*\n", re.M)

DOCKERFILE = "docker/Dockerfile"


def _template(name: str) -> str:
    return (resources.files("cserver.stack") / "templates" / name).read_text(encoding="utf-8")


def _render(name: str, context: dict) -> str:
    from django.template import Context, Engine

    source = _TAG_LINE.sub(r"\1", _template(name))
    engine = Engine(autoescape=False)
    return engine.from_string(source).render(Context(context, autoescape=False))


def context(project: Project, chosen: Overrides | None = None) -> dict:
    """The values the templates read; chosen: what the user gave init (recorded)."""
    if project.demo:
        title, image, health, probe = "the cserver demo project", "cserver-dev", "/hello", "/whoami"
        sync = ("./cserver", "/app/cserver", ["**/__pycache__/"])
    else:
        title, image, health, probe = (
            f"the Django project {project.name}",
            f"{project.name}-dev",
            "/",
            "/",
        )
        ignored = [".git/", ".venv/", "docker/", "**/__pycache__/"]
        ignored += [f"{d}/" for d in _relative_dirs(project)]
        ignored += [f"{s.output}/" for s in project.side_processes.values() if s.output]
        sync = (".", "/app", ignored)
    python_source = project.sources.get("python", "")
    variables = project_variables(project)
    env_example = {"bootstrap": project.bootstrap or ""}
    sides = side_services(project.side_processes, project.redis, project.side_origins)
    outputs = shared_outputs(sides)
    return {
        "redis": project.redis,
        "redis_url": REDIS_URL,
        "sides": sides,
        "outputs": outputs,
        "assets_dockerfile": ASSETS_DOCKERFILE,
        "record": record_line(chosen or Overrides()),
        "project_environment": [v.compose_line for v in variables if v.compose_line],
        "project_variables": [v for v in variables if v.compose_line is None],
        "bootstrap": project.bootstrap or "",
        "project_settings": f"${{CSERVER_PROJECT_SETTINGS:-{project.settings_module}}}",
        "demo": project.demo,
        "title": title,
        "version": f"cserver {__version__}",
        "image": image,
        "settings_module": project.settings_module,
        "database": project.database,
        "database_variable": "DATABASE_URL"
        if project.database == "url"
        else "CSERVER_DATABASE_URL",
        "db_name": project.name,
        "server_environment": compose_environment_lines(),
        "server_lines": env_example_lines(env_example),
        "media_dir": project.media_dir,
        "media_mount": project.media_mount,
        # A str: Django's template engine would localize an int, which needs settings.
        "container_port": str(CONTAINER_PORT),
        "health_path": health,
        "probe_path": probe,
        "sync_path": sync[0],
        "sync_target": sync[1],
        "sync_ignore": sync[2],
        "rebuild_paths": [*project.deps.files, *([] if project.demo else [DOCKERFILE])],
        "python_line": project.python_line,
        "python_source": python_source,
        "base_image": f"python:{project.python_line}-slim",
        "source_root": project.source_root,
        "deps_kind": project.deps.kind,
        "deps_files": project.deps.files,
        "deps_label": project.deps.label,
        "wheel": wheel_name(),
        "extra_packages": [] if project.deps.has_driver else [DEFAULT_DRIVER],
        "ignored_dirs": _relative_dirs(project),
        "export_groups": "" if project.dev_deps else " --no-default-groups",
    }


def _devcontainer(project: Project, values: dict) -> dict:
    """devcontainer.json for the stack: every service `docker compose up` starts."""
    redis = ["redis"] if project.redis else []
    sides = [side.name for side in values["sides"]]
    services = ["db", "migrate", "bootstrap", "web", *redis, *sides]
    name = "cserver demo" if project.demo else f"{project.name} (cserver)"
    return devcontainer_config(name, services, values["container_port"])


def _relative_dirs(project: Project) -> list[str]:
    """Media and static directories inside the project: kept out of the image and the sync."""
    found = (project.media_dir, project.static_root)
    return [d for d in found if d and not d.startswith("/")]


def render(project: Project, chosen: Overrides | None = None) -> dict[str, bytes]:
    """Relative path -> content of every file `init` writes for project."""
    values = context(project, chosen)
    files = {
        "compose.yaml": _render("compose.yaml.tmpl", values),
        DOCKERFILE: _render("Dockerfile.tmpl", values),
        ".dockerignore": _render("dockerignore.tmpl", values),
        ".gitignore": _render("gitignore.tmpl", values),
        ".env.example": _render("env.example.tmpl", values),
    }
    if any(side.image == "node" for side in project.side_processes.values()):
        files[ASSETS_DOCKERFILE] = _render("assets.Dockerfile.tmpl", values)
    files[DEVCONTAINER_COMPOSE] = compose_override()
    rendered = {path: text.encode() for path, text in files.items()}
    rendered[DEVCONTAINER_JSON] = render_devcontainer(_devcontainer(project, values))
    if not project.demo:
        rendered[f"docker/{wheel_name()}"] = build_wheel()
    return rendered

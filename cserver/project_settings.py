"""Settings module of every process in a `cserver init` stack: the project's, then the stack's.

The image and compose.yaml set DJANGO_SETTINGS_MODULE=cserver.project_settings and
CSERVER_PROJECT_SETTINGS to the project's own module. Whatever the command (manage.py,
celery, `docker compose exec web python manage.py shell`, a worker of the team's own),
Django imports this module: it imports the project's settings unchanged, then points the
database and Redis at the stack's services (cserver.stack_overrides). No project file is
edited, and nothing outside the stack imports this.
"""

from __future__ import annotations

import os
from importlib import import_module

from cserver.stack_overrides import StackSettingsError, apply_stack_values

PROJECT_VAR = "CSERVER_PROJECT_SETTINGS"

_module = os.environ.get(PROJECT_VAR, "").strip()
if not _module or _module == __name__:
    raise StackSettingsError(
        f"{PROJECT_VAR}={_module!r} is not valid: expected the project's settings module "
        "(compose.yaml and the image set it, e.g. mysite.settings)"
    )
try:
    _project = import_module(_module)
except KeyError as exc:
    # `os.environ["NAME"]` in the settings: say which variable and where it goes.
    raise StackSettingsError(
        f"settings {_module} need the environment variable {exc.args[0]}, which is not set: "
        "add it to .env (compose passes .env to every service of the stack)"
    ) from None

globals().update({name: value for name, value in vars(_project).items() if name.isupper()})
_changed = apply_stack_values(globals(), os.environ)

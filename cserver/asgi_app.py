"""runcserver's side of asgi mode: which application is served, and the banner's wording.

The server itself (uvicorn, optional) lives in cserver/server/asgi.py; nothing here
imports uvicorn, so that its absence is one clear error line.
"""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from django.core.management.base import CommandError

if TYPE_CHECKING:
    from django.core.management.base import BaseCommand

    from cserver.config import ServerConfig

MISSING_UVICORN = (
    'cserver: --mode asgi needs uvicorn, which is not installed: pip install "cserver[asgi]"'
)
_STARTING_RE = re.compile(r"Starting (?:\w+ )?development server at")


def require_uvicorn() -> None:
    """CommandError (one line, exit status 1) when uvicorn cannot be imported."""
    try:
        import uvicorn  # noqa: F401
    except ImportError:
        raise CommandError(MISSING_UVICORN) from None


def project_asgi_application(config: ServerConfig, options: dict[str, Any]) -> Any:
    """The ASGI application runcserver serves in asgi mode.

    ``settings.ASGI_APPLICATION`` if set (as daphne's and channels' runserver read it), else
    Django's own; static files as staticfiles' runserver serves them (installed, not
    --nostatic, and DEBUG or --insecure); diagnostics around it all when asked for.
    """
    from django.apps import apps
    from django.conf import settings
    from django.core.asgi import get_asgi_application
    from django.core.exceptions import ImproperlyConfigured
    from django.utils.module_loading import import_string

    path = getattr(settings, "ASGI_APPLICATION", None)
    if path:
        try:
            app = import_string(path)
        except ImportError as err:
            raise ImproperlyConfigured(
                f"ASGI application '{path}' could not be loaded; Error importing module."
            ) from err
    else:
        app = get_asgi_application()
    if apps.is_installed("django.contrib.staticfiles"):
        from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

        use_static = options.get("use_static_handler", True)
        if use_static and (settings.DEBUG or options.get("insecure_serving")):
            app = ASGIStaticFilesHandler(app)
    if config.diagnostics:
        from cserver.diagnostics import wrap_asgi_application

        app = wrap_asgi_application(app, config)
    return app


@contextlib.contextmanager
def announce_asgi(command: BaseCommand) -> Iterator[None]:
    """runserver's banner as written inside, with "Starting ASGI development server at"."""
    real = command.stdout
    captured = io.StringIO()
    command.stdout = type(real)(captured)  # an OutputWrapper, as on_bind() expects
    try:
        yield
    finally:
        command.stdout = real
        text = _STARTING_RE.sub("Starting ASGI development server at", captured.getvalue())
        real.write(text, ending="")

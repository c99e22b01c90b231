"""Query parameters of the demo's views: integers in a range, or a one-line 400."""

from __future__ import annotations

import functools
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest

View = Callable[..., HttpResponse]


class BadParam(Exception):
    """A query parameter out of range; the message is the one-line 400 body."""


def int_param(request: HttpRequest, name: str, default: int, maximum: int) -> int:
    raw = request.GET.get(name)
    if raw is None or raw == "":
        return default
    # isascii: "²".isdigit() is true but int() rejects it; the length cap keeps int() cheap.
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 9 or int(raw) > maximum:
        raise BadParam(f"{name}={raw!r} is not valid: expected an integer from 0 to {maximum}")
    return int(raw)


def bad_request(exc: BadParam) -> HttpResponse:
    return HttpResponseBadRequest(f"{exc}\n", content_type="text/plain; charset=utf-8")


def bad_params_answered(view: View) -> View:
    """A (sync) view whose int_param() failures become the one-line 400."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except BadParam as exc:
            return bad_request(exc)

    return wrapper

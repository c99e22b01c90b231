"""Query parameters of the demo's views: integers in a range, or a one-line 400."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest


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

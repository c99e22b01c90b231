"""Server-Sent Events: a few events a moment apart, streamed as they are produced.

Under asgi mode the events come from an async generator, so a waiting stream holds no
thread. Under the WSGI modes Django would consume an async generator whole (with a
warning) before sending anything, so there the same events come from a plain generator.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator

from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    StreamingHttpResponse,
)

from cserver.demo.params import BadParam, bad_request, int_param

MAX_EVENTS = 100
MAX_INTERVAL_MS = 10_000


def event_text(number: int, count: int) -> str:
    """One event in the text/event-stream format: id, event type, JSON data, blank line."""
    data = json.dumps({"n": number, "of": count, "time": time.time()})
    return f"id: {number}\nevent: tick\ndata: {data}\n\n"


async def _async_events(count: int, interval: float) -> AsyncIterator[str]:
    for number in range(1, count + 1):
        yield event_text(number, count)
        if number < count:
            await asyncio.sleep(interval)


def _sync_events(count: int, interval: float) -> Iterator[str]:
    for number in range(1, count + 1):
        yield event_text(number, count)
        if number < count:
            time.sleep(interval)


async def events(request: HttpRequest) -> HttpResponse:
    """?count= events (default 5, up to 100), ?interval_ms= apart (default 500)."""
    # Not @require_safe: before Django 5.0 it does not wrap an async view.
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET", "HEAD"])
    try:
        count = int_param(request, "count", 5, MAX_EVENTS) or 1
        interval = int_param(request, "interval_ms", 500, MAX_INTERVAL_MS) / 1000
    except BadParam as exc:
        return bad_request(exc)
    # An ASGI request has a scope; under WSGI the server iterates the response itself.
    if hasattr(request, "scope"):
        stream: AsyncIterator[str] | Iterator[str] = _async_events(count, interval)
    else:
        stream = _sync_events(count, interval)
    response = StreamingHttpResponse(stream, content_type="text/event-stream")
    # Proxies and browsers must not hold events back.
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response

"""Async demo views: what Django's connections do when a view runs on the event loop."""

from __future__ import annotations

import threading
import time

from asgiref.sync import sync_to_async
from django.db import connection
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, JsonResponse

from cserver.demo.connstate import backend_id
from cserver.demo.models import Counter


async def db_async(request: HttpRequest) -> HttpResponse:
    """/db as an async view: one query through the ORM's async API.

    Django runs the query in a sync_to_async thread: under an ASGI server a fresh one per
    request, whose database connection is not the one a sync view of the same server
    would use. The backend pid tells which session served it.
    """
    # Not @require_safe: on Django 4.2 that decorator turns an async view into a sync one.
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET", "HEAD"])
    started = time.perf_counter()
    count = await Counter.objects.acount()
    elapsed = (time.perf_counter() - started) * 1000
    # The same thread as acount() (thread-sensitive), so the same connection.
    backend = await sync_to_async(backend_id)(connection)
    return JsonResponse(
        {
            "db_vendor": connection.vendor,
            "db_backend_pid": backend,
            "counters": count,
            "query_ms": round(elapsed, 3),
            "thread": threading.current_thread().name,
        }
    )

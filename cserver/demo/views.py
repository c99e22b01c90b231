"""Demo views: each one makes a concurrency or database-connection effect visible."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import F
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_safe

from cserver.demo.connstate import backend_id, conn_state, track_connections
from cserver.demo.models import Counter
from cserver.demo.params import bad_params_answered, int_param

RACY = "racy"
SAFE = "safe"
MAX_SLOW_MS = 60_000
MAX_RACE_SLEEP_MS = 10_000
DEFAULT_RACE_SLEEP_MS = 20


def _worker(request: HttpRequest) -> dict[str, Any]:
    """Where this request ran; mode/worker are None when not served by cserver (e.g. runserver)."""
    # WSGI modes put these in the environ, asgi mode in the ASGI scope.
    where = getattr(request, "scope", request.META)
    return {
        "mode": where.get("cserver.mode"),
        "worker": where.get("cserver.worker"),
        "pid": os.getpid(),
        "thread": threading.current_thread().name,
    }


def hello(request: HttpRequest) -> HttpResponse:
    """The benchmark view: no database, no template, nothing but the response."""
    return HttpResponse("Hello, world!", content_type="text/plain; charset=utf-8")


def hello_length(request: HttpRequest) -> HttpResponse:
    """hello with Content-Length set, as CommonMiddleware sets it in most projects.

    Without it some servers (waitress) close the connection after every response, so a
    keep-alive benchmark of hello alone measures them on new sockets.
    """
    response = hello(request)
    response.headers["Content-Length"] = str(len(response.content))
    return response


@require_safe
def index(request: HttpRequest) -> HttpResponse:
    """HTML page explaining the demo and linking to every view."""
    db = settings.DATABASES["default"]
    context = {
        **_worker(request),
        "db_vendor": connection.vendor,
        "db_name": db["NAME"],
        "conn_max_age": db.get("CONN_MAX_AGE", 0),
        "health_checks": db.get("CONN_HEALTH_CHECKS", False),
        "pool": bool(db.get("OPTIONS", {}).get("pool")),
        "host": request.get_host(),
    }
    return render(request, "cserver_demo/index.html", context)


@require_safe
@bad_params_answered
def slow(request: HttpRequest) -> HttpResponse:
    """Sleep ?ms= milliseconds (default 300): shows whether requests overlap."""
    ms = int_param(request, "ms", 300, MAX_SLOW_MS)
    started = time.time()
    time.sleep(ms / 1000)
    return JsonResponse(
        {"slept_ms": ms, **_worker(request), "started": started, "finished": time.time()}
    )


@require_safe
@track_connections
def whoami(request: HttpRequest) -> HttpResponse:
    """Worker, thread and database session serving this request, and whether it was reused."""
    pid = backend_id(connection)
    return JsonResponse(
        {
            **_worker(request),
            "db_vendor": connection.vendor,
            "db_backend_pid": pid,
            "conn": conn_state(request, connection),
        }
    )


@require_safe
@track_connections
def db(request: HttpRequest) -> HttpResponse:
    """One small query; query_ms includes opening the connection when conn is 'new'."""
    started = time.perf_counter()
    count = Counter.objects.count()
    elapsed = (time.perf_counter() - started) * 1000
    return JsonResponse(
        {
            "db_vendor": connection.vendor,
            "counters": count,
            "query_ms": round(elapsed, 3),
            "conn": conn_state(request, connection),
        }
    )


def _state() -> dict[str, int]:
    values = dict(Counter.objects.filter(name__in=(RACY, SAFE)).values_list("name", "value"))
    return {RACY: values.get(RACY, 0), SAFE: values.get(SAFE, 0)}


@require_safe
def counter(request: HttpRequest) -> HttpResponse:
    """Current values of both counters."""
    return JsonResponse(_state())


@csrf_exempt
@require_http_methods(["GET", "POST"])
@bad_params_answered
def counter_racy(request: HttpRequest) -> HttpResponse:
    """Read, wait ?sleep_ms= (default 20), write value+1: concurrent requests lose updates."""
    sleep_ms = int_param(request, "sleep_ms", DEFAULT_RACE_SLEEP_MS, MAX_RACE_SLEEP_MS)
    row, _ = Counter.objects.get_or_create(name=RACY)
    seen = row.value
    time.sleep(sleep_ms / 1000)  # the window in which another request reads the same value
    row.value = seen + 1
    row.save(update_fields=["value"])
    return JsonResponse(_state())


@csrf_exempt
@require_http_methods(["GET", "POST"])
@bad_params_answered
def counter_safe(request: HttpRequest) -> HttpResponse:
    """Same wait, then UPDATE value = value + 1 in the database: no update is lost."""
    sleep_ms = int_param(request, "sleep_ms", DEFAULT_RACE_SLEEP_MS, MAX_RACE_SLEEP_MS)
    Counter.objects.get_or_create(name=SAFE)
    time.sleep(sleep_ms / 1000)
    Counter.objects.filter(name=SAFE).update(value=F("value") + 1)
    return JsonResponse(_state())


@csrf_exempt
@require_http_methods(["GET", "POST"])
def counter_reset(request: HttpRequest) -> HttpResponse:
    """Set both counters back to 0."""
    Counter.objects.filter(name__in=(RACY, SAFE)).update(value=0)
    return JsonResponse(_state())

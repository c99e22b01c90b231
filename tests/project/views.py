"""Views that let a test observe, from inside the server, how requests overlap."""

import json
import os
import threading
import time

from django.db import connection
from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

_lock = threading.Lock()
_state = {"now": 0, "max": 0}


def hello(request):
    return HttpResponse(b"Hello, world!", content_type="text/plain")


def inflight(request):
    """Sleep ?ms= while counting the requests in flight in this process."""
    with _lock:
        _state["now"] += 1
        _state["max"] = max(_state["max"], _state["now"])
    try:
        time.sleep(int(request.GET.get("ms", "300")) / 1000)
    finally:
        with _lock:
            _state["now"] -= 1
    return JsonResponse(
        {
            "max_inflight": _state["max"],
            "pid": os.getpid(),
            "thread": threading.current_thread().name,
            "worker": cserver_key(request, "worker"),
            "delay_ms": cserver_key(request, "delay_ms"),
        }
    )


@csrf_exempt
def echo(request):
    return JsonResponse(
        {
            "method": request.method,
            "path": request.path,
            "query": request.GET.dict(),
            "body": request.body.decode("latin-1"),
            "headers": {k: v for k, v in request.META.items() if k.startswith("HTTP_")},
        }
    )


def db(request):
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_backend_pid()")
        else:
            cursor.execute("SELECT 1")
        backend = cursor.fetchone()[0]
    return HttpResponse(json.dumps({"backend": backend, "pid": os.getpid()}))


_counters: dict[str, int] = {}


def counter(request):
    """A module global and the default (local-memory) cache, counted per ?key=: both are
    per process, so with several worker processes each counts on its own."""
    from django.core.cache import cache

    key = request.GET.get("key", "")
    with _lock:
        _counters[key] = _counters.get(key, 0) + 1
        value = _counters[key]
    cache.add(f"counter-{key}", 0)
    cached = cache.incr(f"counter-{key}")
    return JsonResponse({"pid": os.getpid(), "global": value, "cache": cached})


def stream(request):
    return StreamingHttpResponse(f"part {n}\n".encode() for n in range(3))


def cserver_key(request, name):
    """What cserver tells the application: in the WSGI environ, or in asgi mode the scope."""
    return getattr(request, "scope", request.META).get(f"cserver.{name}")

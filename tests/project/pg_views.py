"""Views and a middleware for the PostgreSQL connection-lifecycle tests."""

import json
import os
import threading
import time

from asgiref.sync import sync_to_async
from django.db import connection
from django.http import HttpResponse

from tests.project.views import cserver_key


def db_hold(request):
    """Query the backend pid, then keep the connection checked out for ?ms= milliseconds."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    time.sleep(int(request.GET.get("ms", "0")) / 1000)
    payload = {
        "backend": backend,
        "pid": os.getpid(),
        "thread": threading.current_thread().name,
        "worker": cserver_key(request, "worker"),
    }
    return HttpResponse(json.dumps(payload), content_type="application/json")


def _backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


async def db_async(request):
    """/db as an async view: the query runs where Django's async guide says, in
    sync_to_async (thread-sensitive), whose thread holds the connection it used."""
    backend = await sync_to_async(_backend_pid)()
    payload = {"backend": backend, "pid": os.getpid()}
    return HttpResponse(json.dumps(payload), content_type="application/json")


class StartupQueryMiddleware:
    """Runs a query when the handler is built, i.e. in the server process before any fork.

    Stands for project code that touches the database at import or startup time, after
    the server's own checks: the server process then holds an open connection when a
    fork-mode child is created.
    """

    def __init__(self, get_response):
        self.get_response = get_response
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")

    def __call__(self, request):
        return self.get_response(request)

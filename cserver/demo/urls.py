from django.urls import path

from cserver.demo import async_views, events, transfer, views

urlpatterns = [
    path("", views.index, name="index"),
    path("hello", views.hello, name="hello"),
    path("hello/length", views.hello_length, name="hello-length"),
    path("slow", views.slow, name="slow"),
    path("whoami", views.whoami, name="whoami"),
    path("db", views.db, name="db"),
    path("db/async", async_views.db_async, name="db-async"),
    path("counter", views.counter, name="counter"),
    path("counter/racy", views.counter_racy, name="counter-racy"),
    path("counter/safe", views.counter_safe, name="counter-safe"),
    path("counter/reset", views.counter_reset, name="counter-reset"),
    path("download", transfer.download, name="download"),
    path("stream", transfer.stream, name="stream"),
    path("events", events.events, name="events"),
]

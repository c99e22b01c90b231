from django.urls import path

from tests.project import views

urlpatterns = [
    path("hello", views.hello),
    path("inflight", views.inflight),
    path("echo", views.echo),
    path("db", views.db),
    path("stream", views.stream),
    path("counter", views.counter),
]

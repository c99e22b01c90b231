"""The test project's URLs plus the views of tests.project.pg_views."""

from django.urls import path

from tests.project import pg_views
from tests.project.urls import urlpatterns as base_patterns

urlpatterns = [
    *base_patterns,
    path("db/hold", pg_views.db_hold),
    path("db/async", pg_views.db_async),
]

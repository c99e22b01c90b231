from django.apps import AppConfig


class DemoConfig(AppConfig):
    name = "cserver.demo"
    label = "cserver_demo"
    verbose_name = "cserver demo"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created

        from cserver.compat import sqlite_wal_before_5_1
        from cserver.demo.connstate import mark_new_connection

        sqlite_wal_before_5_1()

        # Stamp every fresh DB connection so /whoami can tell "new" from "reused".
        connection_created.connect(mark_new_connection, dispatch_uid="cserver_demo_connstate")

from django.apps import AppConfig


class CserverConfig(AppConfig):
    name = "cserver"
    verbose_name = "cserver"

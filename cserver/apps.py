import sys

from django.apps import AppConfig


class CserverConfig(AppConfig):
    name = "cserver"
    verbose_name = "cserver"

    def __init__(self, app_name: str, app_module: object) -> None:
        super().__init__(app_name, app_module)
        # Before the project's models load: runcserver must survive an error in them.
        from cserver.startup_errors import install_hook, start_warm_early

        install_hook()
        start_warm_early(sys.argv)

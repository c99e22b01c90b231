"""runcserver whose default_port attribute is not a port."""

from cserver.management.commands.runcserver import Command as RunCServerCommand


class Command(RunCServerCommand):
    default_port = "http"

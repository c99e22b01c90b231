"""runcserver with other defaults, set the way projects change runserver's."""

from cserver.management.commands.runcserver import Command as RunCServerCommand


class Command(RunCServerCommand):
    default_addr = "0.0.0.0"
    default_addr_ipv6 = "::"
    default_port = "8765"

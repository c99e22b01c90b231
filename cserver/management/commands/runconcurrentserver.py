"""``runconcurrentserver``: the name the original django-concurrent-server package used."""

from cserver.management.commands.runcserver import Command as RuncserverCommand


class Command(RuncserverCommand):
    pass

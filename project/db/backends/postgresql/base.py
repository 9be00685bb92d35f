from django.db.backends.postgresql import base

from project.db.backends.health import SocketHealthCheckMixin


class DatabaseWrapper(SocketHealthCheckMixin, base.DatabaseWrapper):
    pass

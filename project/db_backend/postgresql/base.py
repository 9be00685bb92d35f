from django.db.backends.postgresql import base

from project.db_backend.health import SocketHealthCheckMixin


class DatabaseWrapper(SocketHealthCheckMixin, base.DatabaseWrapper):
    pass

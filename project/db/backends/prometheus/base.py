from django_prometheus.db.backends.postgresql import base

from project.db.backends.datetimes import NativeTimestampsMixin
from project.db.backends.health import SocketHealthCheckMixin


class DatabaseWrapper(NativeTimestampsMixin, SocketHealthCheckMixin, base.DatabaseWrapper):
    pass

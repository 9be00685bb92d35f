"""The database backends of Postline: Django's PostgreSQL backend (ENGINE
"project.db.backends.postgresql") or django-prometheus's instrumented one
("project.db.backends.prometheus", when metrics are on), each with the health check of
health.py. The read replicas' backend (project.db.backends.replica) builds on the same ones."""

"""The database backends of Postline: Django's PostgreSQL backend (ENGINE
"project.db_backend.postgresql") or django-prometheus's instrumented one
("project.db_backend.prometheus", when metrics are on), each with the health check of
health.py. The read replicas' backend (project.replica_backend) builds on the same ones."""

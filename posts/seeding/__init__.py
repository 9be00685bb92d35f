"""Bulk-load realistic users and posts through PostgreSQL COPY (`manage.py seed`).

Load tests and EXPLAIN plans only mean something on production-sized tables, and a million
users with ten million posts must load in minutes, so nothing is done per row that can be
done once: no ORM, one password hash for everyone, text picked from pre-built pools, indexes
and constraints dropped for a big load and rebuilt in bulk afterwards, COPY streams on every
core. Triggers stay on: posts' search_document trigger fires for every COPY row, so
to_tsvector runs in every stream's backend. Measurements and reasoning: docs/seed.md.

text (word lists, grammar, pools) -> rows (COPY text, columns from the models) -> copying
(parallel COPY streams) -> indexes (drop and rebuild) -> load (the order of a run).
"""

from posts.seeding.copying import DEFAULT_BATCH_ROWS
from posts.seeding.load import SeedReport, dataset_seed
from posts.seeding.rows import SEED_PASSWORD, SeedError

__all__ = ["DEFAULT_BATCH_ROWS", "SEED_PASSWORD", "SeedError", "SeedReport", "dataset_seed"]

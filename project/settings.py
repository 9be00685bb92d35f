"""Postline's one settings module, configured only by environment variables.

Development defaults are safe to run on a laptop (embedded PostgreSQL and Redis, DEBUG on);
DJANGO_ENV=production refuses to start with unsafe values instead of warning at the first
request. The table of variables is in README.md.
"""

from pathlib import Path
from typing import Any

from corsheaders.defaults import default_headers

from project.env import (
    ConfigurationError,
    database_from_url,
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_list,
    env_str,
    env_urls,
)
from project.server.capacity import cpu_count, recommended_pool_size

BASE_DIR = Path(__file__).resolve().parent.parent

DJANGO_ENV = env_choice("DJANGO_ENV", "development", {"development", "production"})
PRODUCTION = DJANGO_ENV == "production"
# The worker model gunicorn runs (project/gunicorn.conf.py): it decides the static files
# middleware and the database connection settings below.
SERVER_MODE = env_choice("SERVER_MODE", "wsgi", {"wsgi", "asgi"})

# --- Core -----------------------------------------------------------------------------------

SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if PRODUCTION:
        raise ConfigurationError("SECRET_KEY must be set when DJANGO_ENV=production")
    # Refused in production (above): a fixed key only for development.
    SECRET_KEY = "development-only-key-not-for-production-use-0123456789abcdefghij"  # noqa: S105  # nosec B105
elif PRODUCTION and (len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5 or SECRET_KEY.startswith("django-insecure")):
    raise ConfigurationError("SECRET_KEY is too weak: use at least 50 random characters")

DEBUG = env_bool("DEBUG", default=not PRODUCTION)
if PRODUCTION and DEBUG:
    raise ConfigurationError("DEBUG must be false when DJANGO_ENV=production")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", [] if PRODUCTION else ["localhost", "127.0.0.1", "[::1]", "testserver"])
if PRODUCTION and not ALLOWED_HOSTS:
    raise ConfigurationError("ALLOWED_HOSTS must be set when DJANGO_ENV=production")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    # CORS for browser clients on other origins (CORS_ALLOWED_ORIGINS).
    "corsheaders",
    # API tokens stored as digests, with an expiry (users.models.AuthToken, users/tokens.py).
    "knox",
    # The job queue: django-tasks' API, its jobs kept in PostgreSQL (project/jobs, docs/jobs.md).
    "django_tasks",
    "django_tasks_db",
    "drf_spectacular",
    # Swagger UI's files served from our own static files: no third-party origin in the CSP.
    "drf_spectacular_sidecar",
    "django_prometheus",
    "project",
    "users",
    "posts",
]

# --- Metrics (docs/observability.md) ----------------------------------------------------------
# METRICS_ENABLED=false drops the request-metrics middlewares and the instrumented database
# and cache backends: how their cost was measured. /metrics is open in development; in
# production it answers direct connections from METRICS_ALLOWED_NETWORKS (Prometheus scrapes
# the pods from inside the cluster) and `Authorization: Bearer <METRICS_TOKEN>` from anywhere.

METRICS_ENABLED = env_bool("METRICS_ENABLED", default=True)
METRICS_ALLOWED_NETWORKS = env_list(
    "METRICS_ALLOWED_NETWORKS",
    ["127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]
    if PRODUCTION
    else ["127.0.0.0/8", "::1/128"],
)
METRICS_TOKEN = env_str("METRICS_TOKEN")
if PRODUCTION and METRICS_TOKEN and len(METRICS_TOKEN) < 32:
    raise ConfigurationError("METRICS_TOKEN is too short: use at least 32 random characters")

# Every middleware is both sync- and async-capable. Under ASGI a request for a sync view runs
# this stack sync, whole in a thread (project/server/handler.py), and one for an async view runs
# it on the event loop, where a sync-only middleware would make Django run it, and every
# middleware above it, in a thread per request, and each MiddlewareMixin hook would cost a
# thread hop (docs/performance.md, issue 5). project.http.middleware's subclasses of Django's
# middlewares run their I/O-free hooks on the event loop; static files are WhiteNoise's, on
# either side (StaticFilesMiddleware).
# Requests are counted and timed once, by RequestMetricsMiddleware (postline_http_*, what the
# alert rules read); django-prometheus's two middlewares counted the same requests again as
# django_http_* at 68 us a request (docs/performance.md).
MIDDLEWARE = [
    # First: its request id is on every log line of the request, its access line times the rest.
    "project.http.middleware.RequestIdMiddleware",
    "project.http.middleware.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "project.http.middleware.StaticFilesMiddleware",
    # Before anything reads the database: where this request's reads go (project/db/routing.py).
    "project.http.middleware.ReadYourWritesMiddleware",
    "project.http.middleware.SessionMiddleware",
    "project.http.middleware.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "project.http.middleware.AuthenticationMiddleware",
    "project.http.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "project.http.middleware.ContentSecurityPolicyMiddleware",
]
if not METRICS_ENABLED:
    MIDDLEWARE.remove("project.http.middleware.RequestMetricsMiddleware")

# --- CORS (django-cors-headers) -----------------------------------------------------------------
# Browser clients served from CORS_ALLOWED_ORIGINS (comma-separated `scheme://host[:port]`) may
# call /api/: preflights are answered (cacheable for CORS_PREFLIGHT_MAX_AGE seconds),
# `Authorization` and `Idempotency-Key` are allowed headers, and the ETag, Retry-After,
# rate-limit and Idempotent-Replayed headers are readable by the page. No origin by default in production; in
# development the usual front-end dev servers. Without any origin the middleware is not
# installed: a request pays nothing for CORS, and no response carries CORS headers.

CORS_ALLOWED_ORIGINS = env_list(
    "CORS_ALLOWED_ORIGINS",
    []
    if PRODUCTION
    else ["http://localhost:3000", "http://127.0.0.1:3000", "http://localhost:5173", "http://127.0.0.1:5173"],
)
CORS_URLS_REGEX = r"^/api/"
CORS_PREFLIGHT_MAX_AGE = env_int("CORS_PREFLIGHT_MAX_AGE", 86_400, minimum=0)
CORS_ALLOW_HEADERS = (*default_headers, "idempotency-key")
CORS_EXPOSE_HEADERS = [
    "ETag",
    "Retry-After",
    "RateLimit-Policy",
    "RateLimit",
    "Idempotent-Replayed",
]
if CORS_ALLOWED_ORIGINS:
    # Before anything that may answer on its own (CommonMiddleware's redirects, the static files).
    MIDDLEWARE.insert(
        MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1, "corsheaders.middleware.CorsMiddleware"
    )

ROOT_URLCONF = "project.urls"
WSGI_APPLICATION = "project.wsgi.application"
ASGI_APPLICATION = "project.asgi.application"
AUTH_USER_MODEL = "users.User"
# Emails are unique case-insensitively through the users_email_ci_unique constraint on
# Lower("email"); the plain unique=True this check asks for would add a second, weaker index.
SILENCED_SYSTEM_CHECKS = ["auth.E003"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# Production serves the collected, hashed and compressed files (collectstatic at image build);
# development serves them straight from the apps through WhiteNoise's finders.
STATIC_ROOT = BASE_DIR / "staticfiles" if PRODUCTION else None
WHITENOISE_USE_FINDERS = SERVESTATIC_USE_FINDERS = not PRODUCTION
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}

# --- Database -------------------------------------------------------------------------------
# Under WSGI (gthread workers) each thread keeps its connection open between requests
# (CONN_MAX_AGE + health checks). Under ASGI the process's threads (DB_POOL_SIZE of them for
# sync views, project/server/handler.py, and Django's for the async views' sync calls) share
# Django's psycopg pool, each request handing its connection back (CONN_MAX_AGE = 0).
# The pool size per process defaults to the brief's formula for the host (cores x 2 + 1).

if PRODUCTION and not (env_str("DATABASE_URL") and env_str("REDIS_URL")):
    raise ConfigurationError("DATABASE_URL and REDIS_URL must be set when DJANGO_ENV=production")
# Unset in development: the entry points that serve or test (manage.py, gunicorn, the test
# session) start the embedded servers and set both before settings load. Importing settings
# starts nothing; a bare import that then connects reaches this reserved, unresolvable name.
_NOT_STARTED = "embedded-servers-not-started.invalid"
DATABASE_URL = env_str("DATABASE_URL") or f"postgres://postgres@{_NOT_STARTED}/postgres"

DB_POOL_SIZE = env_int("DB_POOL_SIZE", recommended_pool_size(cores=cpu_count()), minimum=1)

# DATABASE_PGBOUNCER=true: the database URLs point at PgBouncer in transaction pooling mode,
# where a session outlives no transaction. Server-side cursors (.iterator()) and prepared
# statements would reach another server connection than the one that declared them, and
# PgBouncer refuses the `options` startup parameter (set jit=off with ALTER DATABASE instead).
# Django's ASGI pool stays: it pools client connections to PgBouncer. docs/scale-out.md.
DATABASE_PGBOUNCER = env_bool("DATABASE_PGBOUNCER", default=False)
# Milliseconds a query may run before PostgreSQL cancels it (answered 503 by project/http/api.py),
# so that one pathological query cannot hold a worker and a connection for minutes. The web
# entry points (project/wsgi.py, project/asgi.py) default it to 5000; commands (migrations,
# seed, index builds) run without one. Behind PgBouncer set it with ALTER ROLE instead.
DB_STATEMENT_TIMEOUT_MS = env_int("DB_STATEMENT_TIMEOUT_MS", 0, minimum=0)


def _database(url: str, *, variable: str) -> dict[str, Any]:
    database = database_from_url(url, variable=variable)
    options = database["OPTIONS"]
    options.setdefault("connect_timeout", env_int("DB_CONNECT_TIMEOUT", 3, minimum=1))
    if DATABASE_PGBOUNCER:
        database["DISABLE_SERVER_SIDE_CURSORS"] = True
        options["prepare_threshold"] = None
        options["server_side_binding"] = False
    else:
        # Short OLTP queries only: JIT compilation costs tens of milliseconds on the big counts
        # and searches the planner overestimates, and never pays for itself here.
        timeout = f" -c statement_timeout={DB_STATEMENT_TIMEOUT_MS}" if DB_STATEMENT_TIMEOUT_MS else ""
        options.setdefault("options", f"-c jit=off{timeout}")
    if SERVER_MODE == "asgi":
        database["CONN_MAX_AGE"] = 0
        options["pool"] = {
            "min_size": min(2, DB_POOL_SIZE),
            "max_size": DB_POOL_SIZE,
            "timeout": env_float("DB_POOL_TIMEOUT", 10.0),
            "max_lifetime": 3600.0,
            "max_idle": 300.0,
        }
    else:
        database["CONN_MAX_AGE"] = env_int("DB_CONN_MAX_AGE", 60, minimum=0)
        database["CONN_HEALTH_CHECKS"] = True
    # Django's backend with a health check that needs no round trip (project/db/backends), and
    # with query counts, durations and errors per alias (django_db_*) when metrics are on.
    database["ENGINE"] = "project.db.backends.prometheus" if METRICS_ENABLED else "project.db.backends.postgresql"
    return database


DATABASES = {"default": _database(DATABASE_URL, variable="DATABASE_URL")}

# --- Read replicas (project/db/routing.py, docs/scale-out.md) ---------------------------------
# DATABASE_REPLICA_URLS: comma-separated URLs of streaming replicas, as `replica_1`,
# `replica_2`... Reads of web requests go to them; a client's reads go to the primary for
# READ_YOUR_WRITES_SECONDS after its last write. A replica that refuses a connection is passed
# over for DATABASE_REPLICA_COOLDOWN seconds and the read served by the primary. Under test
# they mirror the test database (pytest-django creates nothing on them).

READ_YOUR_WRITES_SECONDS = env_int("READ_YOUR_WRITES_SECONDS", 5, minimum=1)
DATABASE_REPLICA_COOLDOWN = env_float("DATABASE_REPLICA_COOLDOWN", 5.0)
for _number, _url in enumerate(env_urls("DATABASE_REPLICA_URLS"), start=1):
    _replica = _database(_url, variable="DATABASE_REPLICA_URLS")
    _replica["ENGINE"] = "project.db.backends.replica"
    _replica["TEST"] = {"MIRROR": "default"}
    if SERVER_MODE == "asgi":
        # A pool that cannot hand out a replica connection soon sends the read to the primary.
        _replica["OPTIONS"]["pool"]["timeout"] = min(
            _replica["OPTIONS"]["pool"]["timeout"], float(_replica["OPTIONS"]["connect_timeout"])
        )
    DATABASES[f"replica_{_number}"] = _replica
DATABASE_REPLICAS = [alias for alias in DATABASES if alias != "default"]
DATABASE_ROUTERS = ["project.db.routing.PrimaryReplicaRouter"] if DATABASE_REPLICAS else []

# --- Cache (Redis through django-redis) -----------------------------------------------------
# Fail open: with Redis unreachable a cache call returns None (at once while the circuit
# breaker is open, else after at most the socket timeout) and the request is served from
# PostgreSQL. Ignored errors are logged.

REDIS_URL = env_str("REDIS_URL") or f"redis://{_NOT_STARTED}:6379/0"
CACHE_TTL = env_int("CACHE_TTL", 300, minimum=1)
CACHE_SOCKET_TIMEOUT = env_float("CACHE_SOCKET_TIMEOUT", 0.25)
CACHES = {
    "default": {
        # django-redis with hit/miss/failure counters (django_cache_*) when metrics are on.
        "BACKEND": "django_prometheus.cache.backends.redis.RedisCache"
        if METRICS_ENABLED
        else "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "postline"),
        "TIMEOUT": CACHE_TTL,
        "OPTIONS": {
            "CLIENT_CLASS": "django_redis.client.DefaultClient",
            # Connections consult a circuit breaker: while Redis is down no call waits on it.
            "CONNECTION_FACTORY": "project.cache.redis_breaker.BreakerConnectionFactory",
            "SOCKET_CONNECT_TIMEOUT": CACHE_SOCKET_TIMEOUT,
            "SOCKET_TIMEOUT": CACHE_SOCKET_TIMEOUT,
            "IGNORE_EXCEPTIONS": True,
        },
    }
}
DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS = True
# Seconds the breaker keeps Redis marked down after a failed connect before trying again.
CACHE_BREAKER_COOLDOWN = env_float("CACHE_BREAKER_COOLDOWN", 5.0)
DJANGO_REDIS_LOGGER = "project.cache"

# --- Full-text search (posts/search.py) -------------------------------------------------------
# `?ordering=relevance` ranks the newest SEARCH_RELEVANCE_WINDOW matches of a search, only those
# among the newest SEARCH_SCAN_POSTS posts when there are a page of them; a scan for matches
# reads at most SEARCH_SCAN_POSTS posts; the index plan of a search that looks rare gets
# SEARCH_PLAN_TIMEOUT_MS before the scan takes over; each process reads PostgreSQL's word
# statistics again after SEARCH_STATISTICS_TTL seconds.

SEARCH_RELEVANCE_WINDOW = env_int("SEARCH_RELEVANCE_WINDOW", 200, minimum=1)
SEARCH_SCAN_POSTS = env_int("SEARCH_SCAN_POSTS", 30_000, minimum=1)
SEARCH_PLAN_TIMEOUT_MS = env_int("SEARCH_PLAN_TIMEOUT_MS", 100, minimum=1)
SEARCH_STATISTICS_TTL = env_int("SEARCH_STATISTICS_TTL", 300, minimum=1)

# --- Outbound HTTP: profile enrichment (GET /api/users/{id}/overview/) ------------------------
# A URL template with {user_id}; unset disables enrichment. A slow or failing upstream never
# fails the overview: after ENRICHMENT_BREAKER_THRESHOLD failures in a row it is not called for
# ENRICHMENT_BREAKER_COOLDOWN seconds.

PROFILE_ENRICHMENT_URL = env_str("PROFILE_ENRICHMENT_URL")
PROFILE_ENRICHMENT_TIMEOUT = env_float("PROFILE_ENRICHMENT_TIMEOUT", 0.3)
ENRICHMENT_CACHE_TTL = env_int("ENRICHMENT_CACHE_TTL", 60, minimum=1)
ENRICHMENT_BREAKER_THRESHOLD = env_int("ENRICHMENT_BREAKER_THRESHOLD", 5, minimum=1)
ENRICHMENT_BREAKER_COOLDOWN = env_float("ENRICHMENT_BREAKER_COOLDOWN", 30.0)
if PROFILE_ENRICHMENT_URL and "{user_id}" not in PROFILE_ENRICHMENT_URL:
    raise ConfigurationError("PROFILE_ENRICHMENT_URL must contain {user_id}")

# --- Authentication ---------------------------------------------------------------------------
# API tokens (users/tokens.py): a token expires AUTH_TOKEN_IDLE_DAYS after its last use and
# AUTH_TOKEN_MAX_DAYS after sign-in at the latest; its use is recorded at most once per
# AUTH_TOKEN_TOUCH_SECONDS. Passwords: Argon2id at OWASP's minimum cost (users/hashers.py);
# hashes made with an older hasher or cost are upgraded at their owner's next sign-in.

KNOX_TOKEN_MODEL = "users.AuthToken"  # noqa: S105  -- a model's name, not a secret  # nosec B105
# Knox's own migrations create its knox_authtoken table even when its model is swapped out;
# without them the swapped model gets no table (users' migrations create auth_tokens).
MIGRATION_MODULES = {"knox": None}
REST_KNOX = {
    # A recognisable prefix lets secret scanners find leaked tokens.
    "TOKEN_PREFIX": "pl_",  # nosec B105  -- a public marker, not a secret
    "AUTH_HEADER_PREFIX": "Token",
}
AUTH_TOKEN_IDLE_DAYS = env_int("AUTH_TOKEN_IDLE_DAYS", 30, minimum=1)
AUTH_TOKEN_MAX_DAYS = env_int("AUTH_TOKEN_MAX_DAYS", 365, minimum=1)
AUTH_TOKEN_TOUCH_SECONDS = env_int("AUTH_TOKEN_TOUCH_SECONDS", 60, minimum=0)
# A user's live tokens at most (one per device): a sign-in beyond it revokes the oldest.
AUTH_TOKENS_PER_USER = env_int("AUTH_TOKENS_PER_USER", 100, minimum=1)
PASSWORD_HASHERS = [
    "users.hashers.Argon2idHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]
PASSWORD_ARGON2_TIME_COST = env_int("PASSWORD_ARGON2_TIME_COST", 2, minimum=1)
PASSWORD_ARGON2_MEMORY_KIB = env_int("PASSWORD_ARGON2_MEMORY_KIB", 19_456, minimum=8)
PASSWORD_ARGON2_PARALLELISM = env_int("PASSWORD_ARGON2_PARALLELISM", 1, minimum=1)
# Seconds a password reset link works (once), and an email verification link.
PASSWORD_RESET_TIMEOUT = env_int("PASSWORD_RESET_TIMEOUT", 3_600, minimum=60)
EMAIL_VERIFICATION_TIMEOUT = env_int("EMAIL_VERIFICATION_TIMEOUT", 7 * 86_400, minimum=60)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Email and the job queue (docs/jobs.md) ----------------------------------------------------
# Emails are sent by jobs (users/tasks.py) through Django's SMTP backend in production, set up
# with Django's own names (EMAIL_HOST, EMAIL_PORT, EMAIL_HOST_USER, EMAIL_HOST_PASSWORD,
# EMAIL_USE_TLS, EMAIL_USE_SSL, EMAIL_TIMEOUT, DEFAULT_FROM_EMAIL). In development, unless
# EMAIL_HOST is set, they are written as files to EMAIL_FILE_PATH (.data/mail/) to be read
# there. Their links point at FRONTEND_URL, the web client's origin.

EMAIL_HOST = env_str("EMAIL_HOST")
if PRODUCTION and not EMAIL_HOST:
    raise ConfigurationError(
        "EMAIL_HOST must be set when DJANGO_ENV=production (password reset and verification emails)"
    )
EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend" if EMAIL_HOST else "django.core.mail.backends.filebased.EmailBackend",
)
EMAIL_FILE_PATH = env_str("EMAIL_FILE_PATH", str(BASE_DIR / ".data" / "mail"))
EMAIL_PORT = env_int("EMAIL_PORT", 587 if PRODUCTION else 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", default=PRODUCTION)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", default=False)
if EMAIL_USE_TLS and EMAIL_USE_SSL:
    raise ConfigurationError("EMAIL_USE_TLS and EMAIL_USE_SSL are exclusive: set one")
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10, minimum=1)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Postline <no-reply@postline.invalid>")
FRONTEND_URL = env_str("FRONTEND_URL", "http://127.0.0.1:8000")
if PRODUCTION and not env_str("FRONTEND_URL"):
    raise ConfigurationError("FRONTEND_URL must be set when DJANGO_ENV=production (the links in emails)")

TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default"]}}
# A job that raises runs again after JOB_RETRY_BASE_SECONDS x 2^(attempt - 1), at most
# JOB_RETRY_MAX_SECONDS later, until JOB_MAX_ATTEMPTS attempts; then it is marked failed.
JOB_MAX_ATTEMPTS = env_int("JOB_MAX_ATTEMPTS", 5, minimum=1)
JOB_RETRY_BASE_SECONDS = env_float("JOB_RETRY_BASE_SECONDS", 10.0)
JOB_RETRY_MAX_SECONDS = env_float("JOB_RETRY_MAX_SECONDS", 3_600.0)
# The worker's own /metrics port (0: none); under `make run` gunicorn's /metrics shows them too.
JOBS_METRICS_PORT = env_int("JOBS_METRICS_PORT", 0, minimum=0)

# --- Idempotency-Key (project/http/idempotency.py) ---------------------------------------------
# How long a create request's key and response are kept (a retry within it is answered with the
# first response), and how long a retry waits for a first request still running (then 409).

IDEMPOTENCY_KEY_TTL_HOURS = env_int("IDEMPOTENCY_KEY_TTL_HOURS", 24, minimum=24)
IDEMPOTENCY_WAIT_MS = env_int("IDEMPOTENCY_WAIT_MS", 2_000, minimum=1)

# --- REST framework -------------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Knox's digests, one query, plus a primary lookup for tokens not yet on a read replica.
        "users.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticatedOrReadOnly"],
    "DEFAULT_PAGINATION_CLASS": "project.http.pagination.KeysetCursorPagination",
    # JSON for API clients (JSONFirstNegotiation answers their Accept headers at once); the
    # browsable API for browsers (Accept: text/html), signed in through /api-auth/login/.
    "DEFAULT_RENDERER_CLASSES": [
        "project.http.renderers.ORJSONRenderer",
        "project.http.renderers.BrowsableAPIWithItsStyles",
    ],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "project.http.renderers.JSONFirstNegotiation",
    "DEFAULT_SCHEMA_CLASS": "project.http.schema.PostlineAutoSchema",
    "EXCEPTION_HANDLER": "project.http.api.exception_handler",
    "DEFAULT_THROTTLE_CLASSES": ["project.http.throttling.WindowRateThrottle"],
    # Production defaults are strict; development ones let a test client create a few hundred
    # accounts and a thousand posts a minute. "auth" guards the token endpoint against
    # password guessing. Counters live in Redis and fail open with it.
    "DEFAULT_THROTTLE_RATES": {
        "anon": env_str("THROTTLE_ANON", "120/min" if PRODUCTION else "5000/min"),
        "user": env_str("THROTTLE_USER", "600/min" if PRODUCTION else "5000/min"),
        "auth": env_str("THROTTLE_AUTH", "10/min" if PRODUCTION else "600/min"),
    },
    # Client addresses for anonymous throttling: X-Forwarded-For is trusted only through this
    # many proxies (the ingress), never from the client itself.
    "NUM_PROXIES": env_int("NUM_PROXIES", 1 if PRODUCTION else 0, minimum=0),
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Postline API",
    "DESCRIPTION": "Users and posts: sign-up, token auth, profiles, posts with full-text search.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Security -------------------------------------------------------------------------------

SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Sent with every HTML page (project.http.middleware.ContentSecurityPolicyMiddleware): the landing
# page, the admin and Swagger UI load scripts, styles, fonts and images from this origin only,
# and never inline code; Swagger UI's icons are data: URIs, its requests go to this origin.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
# The browsable API's pages (project.http.renderers.BrowsableAPIWithItsStyles): DRF's templates
# use inline style attributes; scripts stay from this origin only.
BROWSABLE_API_CONTENT_SECURITY_POLICY = CONTENT_SECURITY_POLICY.replace(
    "style-src 'self'", "style-src 'self' 'unsafe-inline'"
)
SESSION_COOKIE_HTTPONLY = True
if PRODUCTION:
    # TLS ends at the load balancer or ingress, which sets X-Forwarded-Proto.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=True)
    # Probes and the metrics scraper talk plain HTTP inside the cluster.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True

# --- Logging --------------------------------------------------------------------------------

# One line per record on stderr. LOG_FORMAT=json (production default): one JSON object per line
# with timestamp, level, logger, message, request_id and the record's extra fields, for log
# shippers. LOG_FORMAT=text (development default): readable lines, still with the request id.
# project.access writes one line per request (project.http.middleware.RequestIdMiddleware).

LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
LOG_FORMAT = env_choice("LOG_FORMAT", "json" if PRODUCTION else "text", {"json", "text"})
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "project.observability.logs.RequestIdFilter"},
        "skip_circuit_open": {"()": "project.cache.redis_breaker.SkipCircuitOpen"},
    },
    "formatters": {
        "json": {"()": "project.observability.logs.JsonFormatter"},
        "text": {"()": "project.observability.logs.TextFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["request_id"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Through the root handler only (Django's own console handler would print twice).
        "django": {"handlers": [], "level": LOG_LEVEL, "propagate": True},
        "django.db.backends": {"level": "INFO"},
        # Cache errors django-redis ignored (fail-open); the breaker's own refusals are not repeated.
        DJANGO_REDIS_LOGGER: {"filters": ["skip_circuit_open"]},
        # pgserver logs every attach at INFO.
        "pgserver": {"level": "WARNING"},
    },
}

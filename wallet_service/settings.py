"""Django settings: one module, every knob from the environment (see wallet_service/config.py).

Defaults are the production-safe ones: debug off, explicit hosts, a secret key required.
"""

from __future__ import annotations

import dj_database_url

from wallet_service.config import BASE_DIR, load_config
from wallet_service.embedded_db import url as embedded_database_url
from wallet_service.logs import logging_config

CONFIG = load_config()

SECRET_KEY = CONFIG.secret_key
DEBUG = CONFIG.debug
ALLOWED_HOSTS = list(CONFIG.allowed_hosts)

INSTALLED_APPS = [
    # django.contrib.admin, with the login throttled like the API's (wallet_service/admin_site.py).
    "wallet_service.admin_apps.WalletAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_prometheus",
    "wallet_service",
    "corsheaders",
    "rest_framework",
    "knox",
    "phonenumber_field",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "accounts",
    "wallets",
    "idempotency",
    "events",
]

MIDDLEWARE = [
    # Outermost: the request metrics (latency included) and the request log cover every other middleware.
    "wallet_service.api.middleware.RequestMetricsMiddleware",
    "wallet_service.api.middleware.RequestLogMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "wallet_service.api.middleware.DefaultJSONContentTypeMiddleware",
    # Sessions, CSRF, the session's user and messages, for /admin/ only: the API uses none of them.
    "wallet_service.api.middleware.AdminOnlyMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # With read replicas: after an API write request, the user's WAL position (wallet_service/db_routing.py).
    "wallet_service.db_routing.WritePositionMiddleware",
]
# In this order, inside AdminOnlyMiddleware (wallet_service/api/middleware.py).
WALLET_SERVICE_ADMIN_MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
# The admin's checks and `check --deploy`'s CSRF warning look for these in MIDDLEWARE; they are in
# WALLET_SERVICE_ADMIN_MIDDLEWARE, run for every /admin/ request, the only part of the service that reads a cookie
# (wallets/tests/test_admin.py, wallet_service/tests/test_admin_security.py: the login's CSRF check included).
SILENCED_SYSTEM_CHECKS = ["admin.E408", "admin.E409", "admin.E410", "security.W003"]

ROOT_URLCONF = "wallet_service.urls"
WSGI_APPLICATION = "wallet_service.wsgi.application"
# Every contract path answers with and without a trailing slash itself: never redirect.
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

# --- Database --------------------------------------------------------------------------------
# PostgreSQL, always. DATABASE_URL selects the server; unset, the embedded PostgreSQL that `make run`
# starts (wallet_service/embedded_db.py: var/pgdata, reached through its socket in var/pgrun).
DATABASES = {
    "default": dj_database_url.parse(
        CONFIG.database_url or embedded_database_url(), conn_max_age=600, conn_health_checks=True
    )
}
# django-prometheus's subclass of Django's PostgreSQL backend counts connections, queries and errors and times
# each query (django_db_* metrics); it changes nothing else (same vendor, options, conn_max_age). Ours
# (wallet_service/database) is that backend with the same counts made cheaper per statement.
DATABASES["default"]["ENGINE"] = DATABASES["default"]["ENGINE"].replace(
    "django.db.backends.postgresql", "wallet_service.database", 1
)
# Behind PgBouncer in transaction pooling mode (docs/SCALING.md, "PgBouncer"), each transaction may run
# on another server connection: no named cursors (a server-side cursor outlives its transaction only
# WITH HOLD, and .iterator() would use one), no prepared statements (PgBouncer 1.18 does not track them).
# The code keeps no other session state: its SET statements are set_config(..., true), local to a
# transaction. Migrations take a session-level advisory lock and must connect to PostgreSQL directly.
WALLET_SERVICE_DATABASE_POOLER = CONFIG.database_pooler
if CONFIG.database_pooler == "pgbouncer":
    DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True
    DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = None
else:
    # Server-side parameter binding: psycopg sends each statement's parameters apart from its text, so that a
    # statement sent five times on a connection is prepared once and then only executed (prepare_threshold):
    # PostgreSQL parses and plans the charge's statements once per connection instead of once per request.
    # (Django turns psycopg's automatic preparation off unless prepare_threshold is given; with no pooler
    # between the service and PostgreSQL, prepared statements live as long as the persistent connection.)
    DATABASES["default"].setdefault("OPTIONS", {}).update(server_side_binding=True, prepare_threshold=5)
# Streaming replicas that may serve reads (WALLET_SERVICE_READ_REPLICA_URLS): aliases replica_0, replica_1...
# Only wallet_service/db_routing.py sends queries there, and only when that cannot change an answer.
# A replica that does not answer within two seconds is skipped (libpq's smallest connect_timeout).
READ_REPLICAS = tuple(f"replica_{index}" for index in range(len(CONFIG.read_replica_urls)))
for alias, replica_url in zip(READ_REPLICAS, CONFIG.read_replica_urls, strict=True):
    DATABASES[alias] = dj_database_url.parse(replica_url, conn_max_age=600, conn_health_checks=True)
    DATABASES[alias]["ENGINE"] = DATABASES["default"]["ENGINE"]
    DATABASES[alias].setdefault("OPTIONS", {})["connect_timeout"] = 2
    # Tests never create a database for a replica: it is a copy of the primary's.
    DATABASES[alias]["TEST"] = {"MIRROR": "default"}


DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Accounts and authentication ---------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

REST_KNOX = {
    "TOKEN_TTL": CONFIG.auth_token_expiration,
    "AUTO_REFRESH": False,
    "TOKEN_LIMIT_PER_USER": None,
    "AUTH_HEADER_PREFIX": "Token",
}

# Signup and login attempts (the API's and /admin/'s) per client IP (None: not throttled). Counted in
# the database, so every gunicorn worker and every container behind the same database shares the counters.
WALLET_SERVICE_AUTH_THROTTLE_RATE = CONFIG.auth_throttle_rate
WALLET_SERVICE_MAX_WALLETS_BY_CLIENT = CONFIG.max_wallets_by_client
# Charges and holds one company may have refused for insufficient funds on one wallet per hour.
WALLET_SERVICE_REFUSED_ATTEMPTS_PER_HOUR = CONFIG.refused_attempts_per_hour

PHONENUMBER_DEFAULT_REGION = None
PHONENUMBER_DB_FORMAT = "E164"

# --- REST framework ----------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["wallet_service.api.authentication.TokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["wallet_service.api.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "wallet_service.api.negotiation.JSONOnlyContentNegotiation",
    "EXCEPTION_HANDLER": "wallet_service.api.exceptions.problem_exception_handler",
    "DEFAULT_THROTTLE_CLASSES": [],
    "NUM_PROXIES": CONFIG.num_proxies,
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    "DEFAULT_SCHEMA_CLASS": "wallet_service.api.schema.AutoSchema",
}
# The largest body of this API is a bulk charge: 1,000 items of up to 255-character tokens and summaries
# (up to six bytes a character once JSON-escaped) fit in 4 MiB. A larger one is refused with 413 before
# it is parsed (and, read by the server, within its body timeout: wallet_service/asgi.py).
DATA_UPLOAD_MAX_MEMORY_SIZE = 4 * 1024 * 1024

# --- OpenAPI schema (/schema) and its documentation page (/docs) --------------------------------
SPECTACULAR_SETTINGS = {
    "TITLE": "Wallet service API",
    "VERSION": "1.0.0",
    "DESCRIPTION": (
        "Wallets and payments over JSON. Clients sign up, open wallets identified by unguessable tokens, "
        "top them up and read their history; companies open one wallet and charge other wallets by token.\n\n"
        "- Authenticate with `Authorization: Token <key>` (the key from signup or login): `Token`, not "
        "`Bearer` (see the `tokenAuth` scheme for generated clients).\n"
        '- Amounts: send a string (`"12.50"`), exact whatever the client\'s number types; a JSON number '
        "(`12.5`) is accepted too. At most two decimals, greater than zero and at most `1000000000.00`. "
        "Balances and amounts come back as strings with two decimals.\n"
        "- Dates are ISO 8601 in UTC (`2021-04-11T11:05:13.591091Z`). Strings may not contain NUL (U+0000).\n"
        "- Errors are RFC 9457 problem documents (`application/problem+json`) with a stable `code`; "
        "`GET /problems/{code}` describes each one. When several apply: 401, 429, the idempotency answers, "
        "403, 400 `validation_error`, 409, 404, 400 `same_wallet`, 402.\n"
        "- Every path also answers with a trailing slash (`/wallet/list/`), for every method, with no redirect.\n"
        "- Any method an operation does not list gets 405 `method_not_allowed` (on an operation that takes an "
        "`Idempotency-Key`, 422 first when the key named another request); a body over 4 MiB gets 413, "
        "a body that is not JSON 415.\n"
        "- Every response carries `X-Request-ID`; send your own to find the request in the service's logs."
    ),
    "SERVE_INCLUDE_SCHEMA": False,
    # /schema and /docs are public and never look at a key (a stale one must not make them 401).
    "SERVE_AUTHENTICATION": [],
    "SCHEMA_PATH_PREFIX": "",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENFORCE_NON_BLANK_FIELDS": True,
    "ENUM_GENERATE_CHOICE_DESCRIPTION": False,
    "PREPROCESSING_HOOKS": ["wallet_service.api.schema.canonical_paths"],
    "POSTPROCESSING_HOOKS": ["wallet_service.api.schema.add_problem_components"],
    # The page's scripts and styles are served by the service itself (no CDN): it works offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "persistAuthorization": False, "displayOperationId": True},
}
# /docs loads its assets from the installed sidecar package, with or without collectstatic.
WHITENOISE_USE_FINDERS = True

# --- CORS ----------------------------------------------------------------------------------------
CORS_ALLOWED_ORIGINS = list(CONFIG.allowed_origins)
CORS_ALLOW_HEADERS = [
    "accept",
    "authorization",
    "content-type",
    "idempotency-key",
    "origin",
    "user-agent",
    "x-request-id",
]
CORS_EXPOSE_HEADERS = ["Link", "Retry-After", "WWW-Authenticate", "Idempotent-Replayed", "X-Request-ID"]

# --- Internationalisation, static files ----------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# --- Security ------------------------------------------------------------------------------------
SECURE_CONTENT_TYPE_NOSNIFF = True
# Behind trusted proxies, the scheme the client used is theirs to say (absolute URLs such as the
# history's Link header must say https when TLS ends at the proxy).
if CONFIG.num_proxies:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
# TLS ends at a proxy in front (see config.py): the service redirects plain HTTP to HTTPS and sends
# HSTS only when told to. Health checks and metrics scrapes come over plain HTTP from inside.
SECURE_SSL_REDIRECT = CONFIG.secure_ssl_redirect
SECURE_REDIRECT_EXEMPT = [r"^status/?$", r"^metrics/?$"]
SECURE_HSTS_SECONDS = CONFIG.secure_hsts_seconds
SECURE_HSTS_INCLUDE_SUBDOMAINS = CONFIG.secure_hsts_include_subdomains
SECURE_HSTS_PRELOAD = CONFIG.secure_hsts_preload
# /admin/ is served unless switched off (then it is a 404, like any unknown path).
WALLET_SERVICE_ADMIN_ENABLED = CONFIG.admin_enabled
# Only the admin uses cookies; `make run` (plain http://127.0.0.1) turns secure cookies off.
SESSION_COOKIE_SECURE = CONFIG.secure_cookies
CSRF_COOKIE_SECURE = CONFIG.secure_cookies

# --- Webhooks ------------------------------------------------------------------------------------
# Webhook URLs must be https to public addresses (checked at registration and at each delivery) unless
# this is True: for development and tests only (events/webhooks/addresses.py).
WALLET_SERVICE_WEBHOOK_ALLOW_PRIVATE = CONFIG.webhook_allow_private

# --- Metrics ---------------------------------------------------------------------------------------
# /metrics (wallet_service/api/metrics.py) asks for this bearer token when it is set; without one it
# is closed (403) unless explicitly made public.
WALLET_SERVICE_METRICS_TOKEN = CONFIG.metrics_token
WALLET_SERVICE_METRICS_PUBLIC = CONFIG.metrics_public

# --- Logging -------------------------------------------------------------------------------------
# One JSON object per line on stderr, each with the id of the request it belongs to (wallet_service/logs.py).
LOGGING_CONFIG = "wallet_service.logs.configure_logging"
LOGGING = logging_config(CONFIG.log_level)

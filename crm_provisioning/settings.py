"""Settings, read from the environment.

With nothing set the product runs whole on one machine: SQLite in ``var/`` and a Celery
broker on the local filesystem (kombu's filesystem transport), so a real worker and beat run
without any server. Setting ``DATABASE_URL`` and ``CELERY_BROKER_URL`` (or ``REDIS_URL``)
moves it onto PostgreSQL and Redis.

Secrets only ever come from the environment; when ``DEBUG`` is off the settings refuse to
start without a real ``SECRET_KEY`` and ``ALLOWED_HOSTS``.
"""

import os
import re
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("CRM_VAR_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), got {value!r}")


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from None


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


DEBUG = env_bool("DEBUG", True)

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off")
    # Development only: a fixed key is harmless while DEBUG is on and nothing is exposed.
    SECRET_KEY = "dev-insecure-key-only-for-the-embedded-default-never-in-production"  # noqa: S105

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
if not DEBUG and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS must be set when DEBUG is off")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "crm_provisioning.admin_site.BackOfficeConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",  # the trigram indexes of subscriptions.search; harmless on SQLite
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files, served locally: no CDN needed
    "django_celery_beat",
    "catalogue",
    "subscriptions",
    "providers",
    "runs",
    "utilities",
    "monitoring",
    "bench",  # the benchmark's commands (bench, generate_load); the product never imports it
    "crm_provisioning.apps.CompositionConfig",
]

MIDDLEWARE = [
    # /health/live and /health/ready, for load balancers: before host checks and redirects.
    "monitoring.middleware.HealthMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Under /api/: a body too large (413), a control character in a query parameter or a token
    # (400), and Django's own error pages, all in the API's error shape.
    "core.api_middleware.ApiMiddleware",
    # Serves collected static files when DEBUG is off (with DEBUG on, runserver serves them).
    *([] if DEBUG else ["whitenoise.middleware.WhiteNoiseMiddleware"]),
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "crm_provisioning.urls"

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

WSGI_APPLICATION = "crm_provisioning.wsgi.application"

# --- Database -------------------------------------------------------------------------------
_sqlite_path = VAR_DIR / "db.sqlite3"
DATABASES = {
    "default": dj_database_url.config(
        env="DATABASE_URL",
        default=f"sqlite:///{_sqlite_path}",
        conn_max_age=60,
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web server, the worker and beat share one SQLite file: WAL lets readers run while one
    # writer commits, IMMEDIATE transactions take the write lock up front (no deadlocking
    # upgrade from read to write), and the timeout makes a writer wait instead of failing.
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # Tests use a file too, so that a real worker process can see the test database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test_db.sqlite3")}
elif DATABASES["default"]["ENGINE"].startswith("django.db.backends.postgresql"):
    # PostgreSQL through psycopg 3 with server-side binding: a statement a connection has run
    # twice is prepared, and PostgreSQL stops parsing it anew on every call; real-time work
    # also runs its prepared statements on their generic plans, so it stops planning them too
    # (core.db). A real-time action is a couple of dozen short statements, and
    # parsing and planning them cost more than running them.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        server_side_binding=True, prepare_threshold=2
    )

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", VAR_DIR / "static"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

LOGIN_URL = "admin:login"

# --- Security (on whenever DEBUG is off; `manage.py check --deploy` passes) -----------------
if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# --- Celery ---------------------------------------------------------------------------------
BROKER_DIR = Path(os.environ.get("CELERY_BROKER_DIR", VAR_DIR / "broker"))
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL") or os.environ.get("REDIS_URL") or ""
# How long any one call to Redis may take before it fails: the broker's and the wake-ups'
# (providers.wakeups). A Redis that is frozen, or a connection left half-open, then costs a web
# request this long at most instead of hanging it; the action has committed by then, and the
# sweeper wakes its delivery. More than the wake-ups' longest blocking wait (half a second).
REDIS_TIMEOUT_SECONDS = 2
if CELERY_BROKER_URL:
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        # Longer than any task's hard time limit, so a running task is never redelivered.
        "visibility_timeout": 3600,
        "socket_timeout": REDIS_TIMEOUT_SECONDS,
        "socket_connect_timeout": REDIS_TIMEOUT_SECONDS,
        # Connecting to publish a task: two quick tries more, not kombu's default of forever.
        "max_retries": 2,
        "interval_start": 0,
        "interval_step": 0.2,
        "interval_max": 0.2,
    }
else:
    # No broker server: kombu's filesystem transport keeps messages as files in var/broker.
    CELERY_BROKER_URL = "filesystem://"
    for _folder in ("queue", "processed", "control"):
        (BROKER_DIR / _folder).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        # Broadcast (control) messages; kombu's default is a "control" folder in the cwd.
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
        # The worker lists the folder this often (kombu's default is 1 s): short enough that a
        # task expiring after one heartbeat interval is never picked up late.
        "polling_interval": 0.5,
    }
# Real-time delivery and batch runs go to separate queues, so a million-subscription run never
# delays an activation: production runs workers for each (docker-compose: worker, worker-batch);
# a worker started without -Q (./dev run, the tests) consumes all three.
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_TASK_QUEUES = {"realtime": {}, "batch": {}, "celery": {}}
CELERY_TASK_ROUTES = {
    "providers.tasks.deliver": {"queue": "realtime"},
    "runs.tasks.execute_definition": {"queue": "batch"},
    "runs.tasks.execute_part": {"queue": "batch"},
    "runs.tasks.*": {"queue": "celery"},
}
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Celery's Django fixup closes the database connection before and after every task unless
# told to reuse it: a new PostgreSQL backend per wake-up (fork, authentication, cold catalog
# caches) cost the real-time path more than the delivery itself. Reused for this many tasks;
# one that broke (a restarted PostgreSQL) is closed around the task that found it, and the
# next task's is checked first (crm_provisioning.celery).
CELERY_DB_REUSE_MAX = 1000
CELERY_TASK_TIME_LIMIT = 1800
CELERY_TASK_SOFT_TIME_LIMIT = 1700
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
_SWEEP = env_int("SWEEP_SECONDS", 30)
_BEAT = env_int("HEARTBEAT_SECONDS", 15)
CELERY_BEAT_SCHEDULE = {
    "provisioning-sweeper": {
        "task": "providers.tasks.sweep",
        "schedule": _SWEEP,
        "options": {"expires": max(_SWEEP - 1, 1)},
    },
}
# The stale-run sweeper and the heartbeat go to every kind of worker's queue ("celery": the
# real-time worker's; "batch"), each copy expiring before the next is due: a worker that is
# down or failing cannot silence them, and each worker shows its own sign of life. Two copies
# are harmless: the sweeper fails a stale run by a conditional write.
for _queue, _suffix in (("celery", ""), ("batch", "-batch")):
    CELERY_BEAT_SCHEDULE[f"process-run-sweeper{_suffix}"] = {
        "task": "runs.tasks.sweep",
        "schedule": _SWEEP,
        "options": {"queue": _queue, "expires": max(_SWEEP - 1, 1)},
    }
    CELERY_BEAT_SCHEDULE[f"worker-heartbeat{_suffix}"] = {
        "task": "runs.tasks.heartbeat",
        "schedule": _BEAT,
        "args": (_queue,),
        # Expire before the next one is due: a backlog of stale heartbeats is worthless.
        "options": {"queue": _queue, "expires": max(_BEAT - 1, 1)},
    }
# Providers checked, incidents opened and resolved, alerts sent (monitoring.alerts); on the
# real-time worker's "celery" queue, expiring before the next is due.
_WATCH = env_int("WATCH_SECONDS", 60)
CELERY_BEAT_SCHEDULE["monitoring-watch"] = {
    "task": "monitoring.tasks.watch",
    "schedule": _WATCH,
    "options": {"queue": "celery", "expires": max(_WATCH - 1, 1)},
}

# A request body larger than this is refused (413 under /api/): room for a Send Response of a
# thousand answers with their descriptions and the platform's raw answers.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 10 * 1024 * 1024)

# --- REST framework -------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Both take "Authorization: Token <key>": a connector's key, else a person's.
        "providers.authentication.ConnectorTokenAuthentication",
        "core.authentication.PersonTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # People only: a view that names no permission of its own (the API root) refuses connectors.
    "DEFAULT_PERMISSION_CLASSES": ["core.person_permissions.IsPerson"],
    # limit/offset and filters by id, checked as the schema states them (api_query).
    "DEFAULT_PAGINATION_CLASS": "core.api_query.Pages",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": ["core.api_query.FilterBackend"],
    # JSON in, JSON out: one request body type per operation, which generated clients need.
    # Nesting depth limited, control characters refused (core.api_parsers).
    "DEFAULT_PARSER_CLASSES": ["core.api_parsers.JSONParser"],
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    "DEFAULT_SCHEMA_CLASS": "core.api_permissions.ErrorAwareSchema",
    "EXCEPTION_HANDLER": "core.api_errors.handle",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "CRM Provisioning Web API",
    "DESCRIPTION": "Subscriptions and their actions, the catalogue, provisioning requests, runs, "
    "utilities, and the Generic provider's Get Pending / Send Response.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema and its docs are for signed-in people, not connector tokens.
    "SERVE_PERMISSIONS": ["core.person_permissions.IsPerson"],
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Tags and operation ids from the path after /api/ ("v1", "v1_subscriptions_create"), fixed
    # rather than guessed from the common prefix of every DRF route (/metrics is one too).
    "SCHEMA_PATH_PREFIX": "/api",
}

# --- Logging --------------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# --- Provisioning ---------------------------------------------------------------------------
# A process run whose worker has given no sign of life for this long is marked Failed.
RUN_STALE_SECONDS = env_int("RUN_STALE_SECONDS", 300)
# A run over subscriptions works in transactions of RUN_CHUNK_SIZE subscription ids, and is split
# into parts of RUN_PART_SIZE ids that any worker on the batch queue may take.
RUN_CHUNK_SIZE = env_int("RUN_CHUNK_SIZE", 10_000)
RUN_PART_SIZE = env_int("RUN_PART_SIZE", 100_000)
# While agents' actions are flowing, a run over subscriptions works this share of the time (in
# percent) and waits the rest between its chunks, leaving the cores and the database to the
# actions (providers.give_way); 100: it never waits.
RUN_SHARE_UNDER_REALTIME = env_int("RUN_SHARE_UNDER_REALTIME", 10)
if not 1 <= RUN_SHARE_UNDER_REALTIME <= 100:
    raise ImproperlyConfigured(
        f"RUN_SHARE_UNDER_REALTIME must be a percentage from 1 to 100, got "
        f"{RUN_SHARE_UNDER_REALTIME}"
    )
# A worker's claim on a request it is sending; past it, the request may be sent again (same uid).
PROVISIONING_LEASE_SECONDS = env_int("PROVISIONING_LEASE_SECONDS", 60)
# First retry after a transport failure; each further one waits twice as long (at most 1 h).
PROVISIONING_RETRY_SECONDS = env_int("PROVISIONING_RETRY_SECONDS", 5)
# A provider's secret settings (``*_env``) may only name environment variables starting with
# this prefix: the workers hold every other variable (SECRET_KEY, DATABASE_URL) too, and a
# provider sends its secret to whatever endpoint it is given (providers.env_secrets).
PROVIDER_SECRET_ENV_PREFIX = os.environ.get("PROVIDER_SECRET_ENV_PREFIX", "CRM_SECRET_")
if not re.fullmatch(r"[A-Z][A-Z0-9_]*_", PROVIDER_SECRET_ENV_PREFIX):
    raise ImproperlyConfigured(
        "PROVIDER_SECRET_ENV_PREFIX must be capital letters, digits and _, ending in _ (e.g. "
        f"CRM_SECRET_), got {PROVIDER_SECRET_ENV_PREFIX!r}"
    )
# PostgreSQL: the real-time path's hand-written statements (core.fast_path, docs/adr/0002); off,
# the portable implementations serve (to compare, or to rule them out).
PROVISIONING_FAST_PATH = env_bool("PROVISIONING_FAST_PATH", True)
# One line per installed provider adapter (see providers/registry.py).
PROVISIONING_ADAPTERS = [
    "providers.generic.adapter.GenericAdapter",
    "providers.conax_ws.adapter.ConaxWSAdapter",
    "providers.conax_sms.adapter.ConaxSMSAdapter",
    "providers.exset.adapter.ExsetAdapter",
    "providers.irdeto.adapter.IrdetoAdapter",
]

# Prometheus sends it as "Authorization: Bearer <token>" to read /metrics; people with the
# metrics permission (operators, administrators) read it in the browser without it.
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")
# Alerts (monitoring.alerts): a provider with this many Failed requests opens an incident.
ALERT_FAILED_REQUESTS = env_int("ALERT_FAILED_REQUESTS", 20)
# An incident is told only once it has lasted this long (a platform restarting is no news).
ALERT_AFTER_SECONDS = env_int("ALERT_AFTER_SECONDS", 60)
# E-mail for alerts: printed on the console unless EMAIL_BACKEND says otherwise (Django's SMTP
# backend: django.core.mail.backends.smtp.EmailBackend, with EMAIL_HOST and friends).
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "crm-provisioning@localhost")

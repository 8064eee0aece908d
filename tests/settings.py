"""Settings for the tests: in-process tests use in-memory SQLite; the real-process tests point
``AUTOMIGRATE_TEST_DATABASE_URL`` at a fresh database on a real server."""

from __future__ import annotations

import os

import django
import environ

from tests import drivers

env = environ.Env()

# Before any database backend is imported: AUTOMIGRATE_TEST_DRIVERS=psycopg2,pymysql.
TEST_DRIVERS = drivers.install()

SECRET_KEY = "django-automigrate-tests"
DEBUG = env.bool("AUTOMIGRATE_TEST_DEBUG", default=False)
USE_TZ = True
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "tests.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "health_check",
    "tests.testapp",
    "tests.otherapp",
    "tests.squashapp",
    *env.list("AUTOMIGRATE_TEST_EXTRA_APPS", default=[]),
]
# Startup runs must work wherever the app is listed: before or after contenttypes and auth.
if env.bool("AUTOMIGRATE_TEST_APP_FIRST", default=False):
    INSTALLED_APPS.insert(0, "django_automigrate")
else:
    INSTALLED_APPS.append("django_automigrate")
WSGI_APPLICATION = "tests.wsgi.application"
ASGI_APPLICATION = "tests.asgi.application"
if env.bool("AUTOMIGRATE_TEST_DAPHNE", default=False):
    # daphne first in INSTALLED_APPS: runserver then serves ASGI (daphne's own runserver).
    INSTALLED_APPS.insert(0, "daphne")
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
DATABASES = {"default": env.db_url("AUTOMIGRATE_TEST_DATABASE_URL", default="sqlite://:memory:")}
if env.bool("AUTOMIGRATE_TEST_PGBOUNCER", default=False):
    # Behind PgBouncer in transaction pooling: no server-side cursors, no prepared statements.
    DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True
    if TEST_DRIVERS["postgresql"] == "psycopg":  # psycopg2 never prepares statements
        DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = None
if "AUTOMIGRATE_TEST_DUMMY_ALIAS" in os.environ:
    # A backend with no native migration lock, for the system check that refuses it.
    DATABASES[os.environ["AUTOMIGRATE_TEST_DUMMY_ALIAS"]] = {"ENGINE": "django.db.backends.dummy"}
if "AUTOMIGRATE_TEST_OTHER_DATABASE_URL" in os.environ:
    DATABASES["other"] = env.db_url("AUTOMIGRATE_TEST_OTHER_DATABASE_URL")
if "AUTOMIGRATE_TEST_SQLITE_NAME" in os.environ:
    # A SQLite NAME exactly as given (a relative path, a file: URI), which a database URL
    # cannot say; a file: URI with OPTIONS uri, as its documentation asks.
    _sqlite_name = os.environ["AUTOMIGRATE_TEST_SQLITE_NAME"]
    DATABASES["default"] = {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": _sqlite_name,
        "OPTIONS": {"uri": True} if _sqlite_name.startswith("file:") else {},
    }
if "AUTOMIGRATE_TEST_SETTINGS" in os.environ:
    # The AUTOMIGRATE dict as JSON, for real-process tests of bad values (JSON spells 1e400,
    # Infinity, NaN and 10**400 as Python would get them).
    import json

    AUTOMIGRATE = json.loads(os.environ["AUTOMIGRATE_TEST_SETTINGS"])

if django.VERSION >= (6, 1):
    # Django 6.1 mails through named mailers (EMAIL_BACKEND is deprecated); the test runner
    # swaps each for the locmem backend.
    MAILERS = {"default": {"BACKEND": "django.core.mail.backends.smtp.EmailBackend"}}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    # DEBUG by default: the tests read decisions ("skipped at startup", "nothing to do") that
    # the product logs at DEBUG; AUTOMIGRATE_TEST_LOG_LEVEL=INFO is what the docs recommend.
    "loggers": {
        "django_automigrate": {
            "handlers": ["stderr"],
            "level": env.str("AUTOMIGRATE_TEST_LOG_LEVEL", default="DEBUG"),
        },
    },
}

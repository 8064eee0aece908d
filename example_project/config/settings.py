"""Settings of the django-automigrate example project, read from the environment.

Run it with ``python manage.py automigrate`` from this folder; ``DATABASE_URL`` picks the
database (default: ``db.sqlite3`` beside this project).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import django
import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

DEBUG: bool = env.bool("DEBUG", default=True)
SECRET_KEY: str = env.str("SECRET_KEY", default="django-insecure-example-project-dev-only")
ALLOWED_HOSTS: list[str] = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "health_check",  # django-health-check: /health/ready/ lists django-automigrate's check
    "django_automigrate",
    "library",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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

DATABASES: dict[str, Any] = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"

# django-automigrate: the defaults suit this project. Every key is described in
# docs/configuration.md; an environment variable AUTOMIGRATE_<KEY> (for example
# AUTOMIGRATE_LOCK_TIMEOUT=60) overrides the value given here.
AUTOMIGRATE: dict[str, Any] = {
    # Mail settings.ADMINS when a run fails (ADMINS and the EMAIL_* settings must be set).
    "MAIL_ADMINS_ON_FAILURE": env.bool("MAIL_ADMINS_ON_FAILURE", default=False),
}
# Django 6 takes a list of addresses; 5.2 wants (name, address) pairs.
ADMINS: list[Any] = env.list("ADMINS", default=[])
if django.VERSION < (6, 0):
    ADMINS = [("Ops", address) for address in ADMINS]


def _not_a_probe(record: Any) -> bool:
    """Django logs each 500 answer on django.request (and mails it to ADMINS when DEBUG is off):
    a readiness probe answers 500 every few seconds while a migration is pending."""
    request = getattr(record, "request", None)
    return request is None or not request.path.startswith("/health/")


# Show what django-automigrate does (lock waits, each migration, the run summary) on stderr.
LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "not_a_probe": {"()": "django.utils.log.CallbackFilter", "callback": _not_a_probe},
    },
    "formatters": {
        "plain": {"format": "{asctime} {levelname} {name}: {message}", "style": "{"},
    },
    "handlers": {
        "stderr": {"class": "logging.StreamHandler", "formatter": "plain"},
    },
    "loggers": {
        # WARNING keeps the terminal to Django's own "Applying …" lines plus lock waits and
        # errors; LOG_LEVEL=INFO adds a line per migration and a summary per run.
        "django_automigrate": {
            "handlers": ["stderr"],
            "level": env.str("LOG_LEVEL", default="WARNING"),
            "propagate": False,
        },
        # django-health-check logs every failed check with a traceback, on every probe while a
        # migration is pending: the check's one-line reason is in the response already.
        "health_check": {"handlers": ["stderr"], "level": "ERROR", "propagate": False},
        "django.request": {"filters": ["not_a_probe"]},
    },
}

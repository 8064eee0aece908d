"""django-automigrate: bring a Django project's databases up to date, once, under a lock."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0.dev0"

__all__ = [
    "DatabaseResult",
    "RunResult",
    "__version__",
    "contract",
    "join_fleet",
    "migrate",
    "run_at_startup",
]

if TYPE_CHECKING:
    from django_automigrate.run.compat import contract
    from django_automigrate.run.runner import DatabaseResult, RunResult, migrate
    from django_automigrate.startup import StartupState


def __getattr__(name: str) -> Any:
    # Lazy, so that importing the package (INSTALLED_APPS, settings) loads no Django machinery.
    if name == "contract":
        from django_automigrate.run.compat import contract

        return contract
    if name in ("DatabaseResult", "RunResult", "migrate"):
        from django_automigrate.run import runner

        return getattr(runner, name)
    raise AttributeError(f"module 'django_automigrate' has no attribute {name!r}")


def run_at_startup() -> StartupState:
    """Migrate now, as a process's startup run does: for ``wsgi.py``, ``asgi.py`` or a server's
    start hook. Sets Django up first if needed (see
    :func:`django_automigrate.startup.run_at_startup`)."""
    from django.apps import apps

    if not apps.ready:
        import django

        django.setup()  # may run the automatic startup run, which then counts as this one
    from django_automigrate import startup

    return startup.run_at_startup()


def join_fleet(kind: str = "worker") -> bool:
    """Register this process in the fleet, with a heartbeat, as serving processes do by
    themselves: for Celery/RQ workers and cron jobs, whose code must be gone too before
    deferred work runs. One line in the worker's start hook; a no-op when ``FLEET`` is off.
    Returns whether the process joined."""
    from django_automigrate.conf import get_settings
    from django_automigrate.fleet import heartbeat

    if not get_settings().fleet:
        return False
    heartbeat.join(kind)
    return True

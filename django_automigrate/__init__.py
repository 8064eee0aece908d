"""django-automigrate: bring a Django project's databases up to date, once, under a lock."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0.dev0"

__all__ = ["DatabaseResult", "RunResult", "__version__", "migrate"]

if TYPE_CHECKING:
    from django_automigrate.run.runner import DatabaseResult, RunResult, migrate


def __getattr__(name: str) -> Any:
    # Lazy, so that importing the package (INSTALLED_APPS, settings) loads no Django machinery.
    if name in ("DatabaseResult", "RunResult", "migrate"):
        from django_automigrate.run import runner

        return getattr(runner, name)
    raise AttributeError(f"module 'django_automigrate' has no attribute {name!r}")

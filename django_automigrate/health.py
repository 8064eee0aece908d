"""The django-health-check plugin (4.x API): unhealthy while a database is not up to date.

List it in the view of your readiness probe::

    path("health/ready/", HealthCheckView.as_view(checks=["django_automigrate.health.Migrations"]))

Needs the ``health`` extra (``django-health-check>=4.8,<5``).
"""

from __future__ import annotations

import dataclasses

from health_check.base import HealthCheck
from health_check.exceptions import ServiceUnavailable

from django_automigrate.status import database_statuses


@dataclasses.dataclass
class Migrations(HealthCheck):  # type: ignore[misc]
    """Healthy when every database is up to date: nothing pending, no run in progress, none
    failed (see ``docs/health.md``).

    ``alias``: the one database to check; ``None`` (the default) checks every database that
    ``AUTOMIGRATE["DATABASES"]`` migrates, in one check.
    """

    alias: str | None = None

    def run(self) -> None:
        statuses = database_statuses([self.alias] if self.alias else None)
        reasons = [status.reason for status in statuses if not status.healthy]
        if reasons:
            raise ServiceUnavailable("; ".join(reasons))
        # Healthy with deferred work waiting (a rolling deploy): normal, and said so.
        self._note = "; ".join(status.reason for status in statuses if status.reason)

    def pretty_status(self) -> str:
        note: str = getattr(self, "_note", "")
        return f"OK: {note}" if note else "OK"

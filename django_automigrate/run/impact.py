"""``MAX_LOCK_IMPACT`` and ``--max-lock-impact``: a plan whose lock forecast is worse than the limit
is refused before anything is applied, and the dry run says so with the same words.

The forecast is the dry run's (:mod:`~django_automigrate.run.forecast`), made under the migration
lock from the plan the run would apply. A statement that cannot be judged (``RunPython``, SQL the
forecast does not parse) never exceeds a limit: the gate stops what it knows to be disruptive, and
the dry run lists what it could not judge.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.migrations.migration import Migration

from django_automigrate.run import forecast as lock_forecast
from django_automigrate.run.plan import Plan
from django_automigrate.run.sqlplan import plan_sql

#: How an operator lets one plan through, for the message (LEVEL is the plan's own verdict).
OVERRIDE = (
    "To apply it anyway: manage.py automigrate --max-lock-impact {level}, or set "
    "AUTOMIGRATE_MAX_LOCK_IMPACT={level} for this deploy."
)


@dataclasses.dataclass(frozen=True)
class OverLimit:
    """A migration whose forecast is worse than the limit."""

    migration: str
    forecast: lock_forecast.MigrationForecast

    def describe(self) -> str:
        return f"{self.migration} ({self.forecast.message})"


def over_limit(
    forecasts: list[tuple[str, lock_forecast.MigrationForecast | None]], limit: str
) -> list[OverLimit]:
    """The migrations of ``forecasts`` (label, forecast) worse than ``limit``, in plan order."""
    return [
        OverLimit(label, forecast)
        for label, forecast in forecasts
        if forecast is not None and lock_forecast.above(forecast.verdict, limit)
    ]


def forecast_pending(
    connection: BaseDatabaseWrapper,
    plan: Plan,
    *,
    rollback_on_failure: bool,
    rewrite: Callable[[Migration], None] | None = None,
) -> list[tuple[str, lock_forecast.MigrationForecast | None]]:
    """The forecast of each migration ``plan`` would apply, against the database as it is now
    (``rollback_on_failure``: the setting, which makes a run of atomic migrations one
    transaction; ``rewrite``: see :func:`~.sqlplan.plan_sql`)."""
    planned = plan_sql(connection, plan, rewrite)
    forecasts = lock_forecast.forecast_plan(
        connection,
        [
            lock_forecast.PlannedMigration(each.label, each.sql, each.transaction, each.error)
            for each in planned
        ],
        rollback_on_failure=rollback_on_failure,
    )
    return [(each.label, forecast) for each, forecast in zip(planned, forecasts, strict=True)]


def refusal(over: list[OverLimit], limit: str) -> str:
    """Why the run applied nothing, and the exact way to let it through."""
    worst = lock_forecast.worst(item.forecast.verdict for item in over)
    listed = "; ".join(item.describe() for item in over)
    return (
        f"the lock forecast of {listed} is worse than the {limit} that MAX_LOCK_IMPACT (or "
        f"--max-lock-impact) allows. {OVERRIDE.format(level=worst)}"
    )

"""What a run reports: one :class:`DatabaseResult` per database, in a :class:`RunResult`.

Plain data, serialised by ``--format json``, passed to signals and kept by ``startup.state()``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from django.db import DatabaseError

from django_automigrate.exceptions import AutomigrateError
from django_automigrate.models import Status

NOTHING_TO_DO = "nothing_to_do"
LOCK_TIMEOUT = "lock_timeout"
NOT_RUN = "not_run"
DATABASE_MISSING = "database_missing"
NEEDS_ATTENTION = "needs_attention"
#: Statuses of a run that started applying and did not succeed.
FAILED_STATUSES = (Status.FAILED.value, Status.ROLLED_BACK.value, Status.TIMED_OUT.value)


@dataclasses.dataclass
class DatabaseResult:
    """What one run did to one database."""

    alias: str
    #: ``nothing_to_do``, ``succeeded``, ``failed``, ``lock_timeout``, ``database_missing`` (and
    #: ``CREATE_DATABASE`` is off) or ``not_run`` (an earlier database failed, so this one was
    #: left alone).
    status: str
    planned: list[str] = dataclasses.field(default_factory=list)
    applied: list[str] = dataclasses.field(default_factory=list)
    duration: float = 0.0
    lock_wait: float = 0.0
    lock: str = ""
    run_id: int | None = None
    failed_migration: str = ""
    error: str = ""
    #: True when the lock was waited for and another process had applied everything meanwhile.
    applied_by_another_process: bool = False
    #: True when this run created the database (``CREATE_DATABASE``).
    created_database: bool = False
    #: After a failure: how it was undone (``transaction``, ``reverse`` or ""), what was
    #: reversed, and whether the failed migration is half-applied (a person must look).
    rollback: str = ""
    rolled_back: list[str] = dataclasses.field(default_factory=list)
    half_applied: bool = False

    @property
    def exit_code(self) -> int:
        codes = {
            LOCK_TIMEOUT: 3,
            DATABASE_MISSING: 2,
            Status.FAILED.value: 1,
            Status.ROLLED_BACK.value: 1,
            NEEDS_ATTENTION: 1,
            Status.TIMED_OUT.value: 4,
        }
        return codes.get(self.status, 0)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["duration"] = round(self.duration, 3)
        data["lock_wait"] = round(self.lock_wait, 3)
        return data


@dataclasses.dataclass
class RunResult:
    """The outcome of :func:`migrate` over every database it was asked to bring up to date."""

    databases: list[DatabaseResult]

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    @property
    def exit_code(self) -> int:
        """0 success or nothing to do, 1 a migration failed, 2 a database is missing (and may
        not be created), 3 the lock was not had in time, 4 a statement timed out waiting for a
        table lock (STATEMENT_LOCK_TIMEOUT), retries included."""
        return next((r.exit_code for r in self.databases if r.exit_code), 0)

    @property
    def applied(self) -> list[str]:
        return [label for result in self.databases for label in result.applied]

    def raise_for_status(self) -> None:
        """Raise :class:`AutomigrateError` describing the first database that did not succeed."""
        for result in self.databases:
            if result.exit_code:
                error = AutomigrateError(result.error)
                error.exit_code = result.exit_code
                raise error

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "exit_code": self.exit_code,
            "databases": [r.to_dict() for r in self.databases],
        }


def describe_error(alias: str, exc: BaseException) -> str:
    if isinstance(exc, AutomigrateError):
        return str(exc)
    if isinstance(exc, DatabaseError):
        return f"Database error on {alias!r}: {type(exc).__name__}: {exc}".strip()
    if isinstance(exc, OSError):
        return f"Cannot use the migration lock of {alias!r}: {exc}"
    return f"{type(exc).__name__}: {exc}"

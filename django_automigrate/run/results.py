"""What a run reports: one :class:`DatabaseResult` per database, in a :class:`RunResult`.

Plain data, serialised by ``--format json``, passed to signals and kept by ``startup.state()``.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

from django.db import Error

from django_automigrate.db_errors import is_connection_lost
from django_automigrate.exceptions import AutomigrateError
from django_automigrate.models import Status


class Outcome(str, enum.Enum):
    """How a run ended on one database: each outcome carries its exit code, stated only here.

    A ``str`` so that results, JSON and log fields compare and print as the plain word.
    """

    NOTHING_TO_DO = "nothing_to_do"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"
    TIMED_OUT = "timed_out"
    NEEDS_ATTENTION = "needs_attention"
    LOCK_TIMEOUT = "lock_timeout"
    DATABASE_MISSING = "database_missing"
    #: The plan's lock forecast is worse than MAX_LOCK_IMPACT: nothing was applied.
    TOO_DISRUPTIVE = "too_disruptive"
    #: The plan cannot run beside the older code still serving (a rename, say): nothing was
    #: applied.
    INCOMPATIBLE = "incompatible"
    NOT_RUN = "not_run"

    def __str__(self) -> str:
        return self.value

    @property
    def exit_code(self) -> int:
        return _EXIT_CODES[self]


#: The exit code of each outcome: 0 done or nothing to do, 1 a migration failed or the database
#: needs a person, 2 a missing database (``CREATE_DATABASE`` off), 3 the lock was not had in time,
#: 4 a statement timed out waiting for a table lock (``STATEMENT_LOCK_TIMEOUT``), 5 the plan would
#: disrupt serving traffic: its lock forecast is worse than ``MAX_LOCK_IMPACT``, or it cannot run
#: beside the older code still serving.
_EXIT_CODES = {
    Outcome.NOTHING_TO_DO: 0,
    Outcome.SUCCEEDED: 0,
    Outcome.NOT_RUN: 0,
    Outcome.FAILED: 1,
    Outcome.ROLLED_BACK: 1,
    Outcome.NEEDS_ATTENTION: 1,
    Outcome.DATABASE_MISSING: 2,
    Outcome.LOCK_TIMEOUT: 3,
    Outcome.TIMED_OUT: 4,
    Outcome.TOO_DISRUPTIVE: 5,
    Outcome.INCOMPATIBLE: 5,
}

NOTHING_TO_DO = Outcome.NOTHING_TO_DO
LOCK_TIMEOUT = Outcome.LOCK_TIMEOUT
NOT_RUN = Outcome.NOT_RUN
DATABASE_MISSING = Outcome.DATABASE_MISSING
NEEDS_ATTENTION = Outcome.NEEDS_ATTENTION
#: Statuses of a run that started applying and did not succeed.
FAILED_STATUSES = (Status.FAILED.value, Status.ROLLED_BACK.value, Status.TIMED_OUT.value)


@dataclasses.dataclass
class DatabaseResult:
    """What one run did to one database."""

    alias: str
    #: An :class:`Outcome`: ``nothing_to_do``, ``succeeded``, ``failed``, ``rolled_back``,
    #: ``timed_out``, ``needs_attention``, ``lock_timeout``, ``database_missing`` (and
    #: ``CREATE_DATABASE`` is off), ``too_disruptive`` (over ``MAX_LOCK_IMPACT``),
    #: ``incompatible`` (it cannot run beside the older code serving) or ``not_run`` (an
    #: earlier database failed, so this one was left alone).
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
    #: Migrations recorded as applied whose file is not on disk (another branch, a newer
    #: release): a warning, never a failure.
    applied_without_file: list[str] = dataclasses.field(default_factory=list)
    #: The failing migration's traceback (Python's format, ending where it raised); "" if none.
    traceback: str = ""
    #: Operations applied to Django's state whose database work waits for the older code to
    #: go (``migration``, ``operation``, ``description``, ``kind``, ``reason``).
    deferred: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return Outcome(self.status).exit_code

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["status"] = str(self.status)
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
    if is_connection_lost(exc):
        return (
            f"Lost the migration lock on database {alias!r} with its connection, which ended "
            f"mid-run (terminated, timed out or cut: {type(exc).__name__}: {exc})".strip()
        )
    if isinstance(exc, Error):
        return f"Database error on {alias!r}: {type(exc).__name__}: {exc}".strip()
    if isinstance(exc, OSError):
        return f"Cannot use the migration lock of {alias!r}: {exc}"
    return f"{type(exc).__name__}: {exc}"

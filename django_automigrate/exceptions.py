"""The errors django-automigrate raises; messages name the database or setting and what to do."""

from __future__ import annotations


class AutomigrateError(Exception):
    """Base class of every error raised by django-automigrate."""

    #: The exit code ``manage.py automigrate`` ends with when this error stops a run.
    exit_code = 1


class ConfigurationError(AutomigrateError):
    """The ``AUTOMIGRATE`` settings, a command option or a database alias cannot be used."""

    exit_code = 2


class LockTimeout(AutomigrateError):
    """The migration lock could not be had within the timeout."""

    exit_code = 3

    def __init__(self, alias: str, lock_name: str, waited: float, holder: str | None) -> None:
        self.alias = alias
        self.lock_name = lock_name
        self.waited = waited
        self.holder = holder
        held_by = f"held by {holder}" if holder else "holder unknown"
        super().__init__(
            f"Could not get the migration lock {lock_name} on database {alias!r} within "
            f"{waited:.1f}s ({held_by}). Another process is migrating: wait for it, or raise "
            "LOCK_TIMEOUT / --lock-timeout."
        )


class LockLost(AutomigrateError):
    """The migration lock was held, then lost (its connection dropped): the run stopped."""

    def __init__(self, alias: str, lock_name: str, detail: str) -> None:
        self.alias = alias
        self.lock_name = lock_name
        self.detail = detail
        super().__init__(
            f"Lost the migration lock {lock_name} on database {alias!r} ({detail}); stopped "
            "so that no other process migrates at the same time. Run automigrate again."
        )


class MigrationFailed(AutomigrateError):
    """A migration raised an error while being applied."""

    def __init__(self, alias: str, migration: str | None, cause: BaseException) -> None:
        self.alias = alias
        self.migration = migration
        self.cause = cause
        where = f"migration {migration}" if migration else "the migration run"
        super().__init__(f"{where} failed on database {alias!r}: {type(cause).__name__}: {cause}")


class PlanError(AutomigrateError):
    """The plan cannot be computed (conflicts, inconsistent history): nothing was applied."""

    def __init__(self, message: str, *, kind: str = "the plan cannot be computed") -> None:
        super().__init__(message)
        #: A few words naming the problem without details, safe to show anyone.
        self.kind = kind


class DatabaseMissing(AutomigrateError):
    """The database does not exist and ``CREATE_DATABASE`` does not allow creating it."""

    exit_code = 2


class StartupFailed(AutomigrateError):
    """The startup run failed and ``ON_FAILURE`` is ``"raise"``: the process stops."""

"""Migration locks: one module per database backend, behind :class:`MigrationLock`."""

from __future__ import annotations

from django.db.backends.base.base import BaseDatabaseWrapper

from django_automigrate.conf import AutomigrateSettings
from django_automigrate.exceptions import ConfigurationError
from django_automigrate.locks.base import MigrationLock, NoLock

NATIVE_LOCK_VENDORS = ("postgresql", "mysql", "sqlite")

__all__ = ["NATIVE_LOCK_VENDORS", "MigrationLock", "NoLock", "lock_for"]


def lock_for(
    connection: BaseDatabaseWrapper, conf: AutomigrateSettings, *, use_lock: bool
) -> MigrationLock:
    """The lock that guards migrations of ``connection``'s database."""
    if not use_lock:
        return NoLock(connection)
    vendor = connection.vendor
    if conf.lock_backend == "table" and vendor == "sqlite":
        raise ConfigurationError(
            f"LOCK_BACKEND 'table' does not work on SQLite (database {connection.alias!r}): a "
            "run's own writes lock the whole file, so its lease could not be renewed. Use "
            "LOCK_BACKEND 'auto' there: a file lock, released when the process dies."
        )
    if conf.lock_backend == "table":
        from django_automigrate.locks.table import TableLeaseLock

        return TableLeaseLock(connection, conf.lock_lease)
    if vendor == "postgresql":
        from django_automigrate.locks.postgresql import PostgresAdvisoryLock

        return PostgresAdvisoryLock(connection)
    if vendor == "mysql":
        from django_automigrate.locks.mysql import MySQLNamedLock

        return MySQLNamedLock(connection)
    if vendor == "sqlite":
        from django_automigrate.locks.sqlite import sqlite_lock

        return sqlite_lock(connection)
    raise ConfigurationError(
        f"Database {connection.alias!r} uses the {vendor!r} backend, which has no native "
        "migration lock. Use AUTOMIGRATE['LOCK_BACKEND'] = 'table' (a lease row), or "
        "USE_LOCK = False only if a single process ever migrates."
    )

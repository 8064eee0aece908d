"""Does the database exist, and creating it when ``CREATE_DATABASE`` allows.

PostgreSQL and MySQL/MariaDB databases are created through a maintenance connection; for SQLite
the database file's folder is created (SQLite creates the file itself). Several processes may
race to create the same database: "already exists" counts as success.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path

from django.db import Error
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.utils import load_backend

from django_automigrate.exceptions import AutomigrateError, DatabaseMissing
from django_automigrate.locks.sqlite import database_identity, is_in_memory

logger = logging.getLogger("django_automigrate")

MAINTENANCE_DATABASES = {"postgresql": ("postgres", "template1"), "mysql": ("",)}


def sqlite_path(connection: BaseDatabaseWrapper) -> Path | None:
    """The SQLite database file, every symlink resolved (``NAME`` may be a path or a ``file:``
    URI), or None for an in-memory database."""
    if is_in_memory(connection):
        return None
    return database_identity(connection.settings_dict["NAME"])


def database_exists(connection: BaseDatabaseWrapper) -> bool:
    """Whether the database exists, asked without creating it (SQLite: without connecting).

    On a server, the database's own connection is tried first, so that the common case costs
    nothing more than the connection a run opens anyway; the maintenance database is asked
    only when that fails.
    """
    if connection.vendor == "sqlite":
        path = sqlite_path(connection)
        return path is None or path.exists()
    try:
        connection.ensure_connection()
    except Error as error:
        if connection.vendor not in MAINTENANCE_DATABASES:
            raise
        try:
            listed = _listed_on_server(connection)
        except AutomigrateError:
            listed = True  # cannot tell either: the database's own error says most
        if not listed:
            return False
        try:
            # Listed now: another process may have created it a moment ago. Once more.
            connection.ensure_connection()
        except Error:
            raise error from None  # it exists: the connection error is the real problem
    return True


def _listed_on_server(connection: BaseDatabaseWrapper) -> bool:
    name = connection.settings_dict["NAME"]
    with _maintenance_connection(connection) as maintenance, maintenance.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        else:
            cursor.execute(
                "SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", [name]
            )
        return cursor.fetchone() is not None


def ensure_database(connection: BaseDatabaseWrapper, *, create: bool) -> bool:
    """Make sure the database exists; return True when this call created it.

    Raises :class:`DatabaseMissing` when it does not exist and ``create`` is False, and the
    connection's own error when it exists but cannot be reached.
    """
    if database_exists(connection):
        return False
    if not create:
        raise DatabaseMissing(
            f"Database {_describe(connection)} does not exist. Create it, or let automigrate "
            "create it: AUTOMIGRATE['CREATE_DATABASE'] = True "
            "(or AUTOMIGRATE_CREATE_DATABASE=true)."
        )
    if connection.vendor == "sqlite":
        path = sqlite_path(connection)
        assert path is not None
        path.parent.mkdir(parents=True, exist_ok=True)
        logger.info(
            "automigrate: %s: creating SQLite database %s",
            connection.alias,
            path,
            extra={"database": connection.alias},
        )
        return True
    _create_server_database(connection)
    return True


def _create_server_database(connection: BaseDatabaseWrapper) -> None:
    name = connection.settings_dict["NAME"]
    quoted = connection.ops.quote_name(name)
    try:
        with _maintenance_connection(connection) as maintenance, maintenance.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute(f"CREATE DATABASE {quoted}")
            else:
                charset = connection.settings_dict.get("OPTIONS", {}).get("charset")
                suffix = f" CHARACTER SET {charset}" if charset else ""
                cursor.execute(f"CREATE DATABASE IF NOT EXISTS {quoted}{suffix}")
    except Error as exc:
        # Processes that race to create it fail with "already exists" (42P04) or, when their
        # CREATE DATABASE statements overlap, a unique violation in pg_database: what counts is
        # whether the database is there now.
        if _listed_on_server(connection):
            logger.info(
                "automigrate: %s: database %r was created by another process",
                connection.alias,
                name,
                extra={"database": connection.alias},
            )
            return
        raise AutomigrateError(f"Could not create database {_describe(connection)}: {exc}") from exc
    logger.info(
        "automigrate: %s: created database %r",
        connection.alias,
        name,
        extra={"database": connection.alias},
    )


class _maintenance_connection:
    """A connection to the server's maintenance database (``postgres``, or none on MySQL)."""

    def __init__(self, connection: BaseDatabaseWrapper) -> None:
        self.connection = connection
        self.wrapper: BaseDatabaseWrapper | None = None

    def __enter__(self) -> BaseDatabaseWrapper:
        errors: list[str] = []
        for name in MAINTENANCE_DATABASES[self.connection.vendor]:
            settings_dict = copy.deepcopy(self.connection.settings_dict)
            settings_dict["NAME"] = name
            settings_dict.get("OPTIONS", {}).pop("pool", None)
            backend = load_backend(settings_dict["ENGINE"])
            wrapper: BaseDatabaseWrapper = backend.DatabaseWrapper(settings_dict, "__maintenance__")
            try:
                wrapper.ensure_connection()
            except Error as exc:
                errors.append(f"{name or '(no database)'}: {exc}")
                continue
            self.wrapper = wrapper
            return wrapper
        raise AutomigrateError(
            f"Cannot reach the server of {_describe(self.connection)} to check that the database "
            "exists: " + "; ".join(errors)
        )

    def __exit__(self, *exc_info: object) -> None:
        if self.wrapper is not None:
            self.wrapper.close()


def _describe(connection: BaseDatabaseWrapper) -> str:
    name = connection.settings_dict.get("NAME")
    host = connection.settings_dict.get("HOST")
    where = f" on {host}" if host else ""
    return f"{name!r}{where} (alias {connection.alias!r})"

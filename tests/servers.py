"""Real database servers for the tests, and fresh databases on them.

A server comes from ``AUTOMIGRATE_TEST_POSTGRES_URL`` / ``AUTOMIGRATE_TEST_MYSQL_URL`` (a URL of
a maintenance database that may create databases), else from testcontainers where Docker works,
else the test is skipped with the reason, or fails when ``AUTOMIGRATE_TEST_REQUIRE`` names the
backend (CI sets it, so CI never passes on SQLite alone).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import environ
import pytest

from tests import drivers

VENDORS = ("sqlite", "postgresql", "mysql")
URL_VARIABLES = {
    "postgresql": "AUTOMIGRATE_TEST_POSTGRES_URL",
    "mysql": "AUTOMIGRATE_TEST_MYSQL_URL",
}


def required_vendors() -> set[str]:
    return {v.strip() for v in os.environ.get("AUTOMIGRATE_TEST_REQUIRE", "").split(",") if v}


def unavailable(vendor: str, reason: str) -> None:
    """Skip, or fail when CI requires this backend."""
    if vendor in required_vendors():
        pytest.fail(f"{vendor} is required (AUTOMIGRATE_TEST_REQUIRE) but unavailable: {reason}")
    pytest.skip(f"{vendor} unavailable: {reason}")


def _url_from_container(vendor: str, stack: contextlib.ExitStack) -> str:
    if not os.environ.get("DOCKER_HOST") and not Path("/var/run/docker.sock").exists():
        unavailable(vendor, f"{URL_VARIABLES[vendor]} is not set and no Docker engine runs here")
    try:
        import docker.errors
    except ImportError:
        unavailable(
            vendor, f"{URL_VARIABLES[vendor]} is not set and testcontainers is not installed"
        )
    try:
        if vendor == "postgresql":
            from testcontainers.community.postgres import PostgresContainer

            container: Any = PostgresContainer("postgres:16", driver=None)
        else:
            from testcontainers.community.mysql import MySqlContainer

            container = MySqlContainer("mariadb:11", username="root", password="test")
        stack.enter_context(container)
    except docker.errors.DockerException as exc:
        unavailable(vendor, f"{URL_VARIABLES[vendor]} is not set and Docker is unavailable ({exc})")
    url: str = container.get_connection_url()
    return url


@dataclass
class Server:
    vendor: str
    url: str = ""  # the maintenance database's URL; empty for SQLite
    folder: Path | None = None  # where SQLite databases go

    def create_database(self) -> FreshDatabase:
        name = f"automigrate_t_{uuid.uuid4().hex[:12]}"
        if self.vendor == "sqlite":
            assert self.folder is not None
            path = self.folder / f"{name}.sqlite3"
            path.touch()  # an empty file is an empty SQLite database, as a new server database is
            return FreshDatabase(self, name, f"sqlite:///{path}")
        with self.admin_connection() as connection, _cursor(connection) as cursor:
            if self.vendor == "postgresql":
                cursor.execute(f'CREATE DATABASE "{name}"')
            else:
                cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        return FreshDatabase(self, name, self.url_for(name))

    def url_for(self, name: str, *, user: str | None = None, password: str = "") -> str:
        parts = urlsplit(self.url)
        netloc = parts.netloc
        if user is not None:
            host = netloc.rsplit("@", 1)[-1]
            credentials = quote(user) + (f":{quote(password)}" if password else "")
            netloc = f"{credentials}@{host}"
        return urlunsplit((parts.scheme, netloc, "/" + name, parts.query, ""))

    @contextlib.contextmanager
    def admin_connection(self) -> Iterator[Any]:
        with _connect(self.vendor, environ.Env.db_url_config(self.url)) as connection:
            yield connection


@dataclass
class FreshDatabase:
    server: Server
    name: str
    url: str
    #: Users or roles a test created for this database; dropped with it.
    users: list[str] = field(default_factory=list)

    @property
    def vendor(self) -> str:
        return self.server.vendor

    @property
    def path(self) -> Path:
        """The SQLite file."""
        return Path(urlsplit(self.url).path)

    def connect(self) -> contextlib.AbstractContextManager[Any]:
        return _connect(self.vendor, environ.Env.db_url_config(self.url))

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self.connect() as connection, _cursor(connection) as cursor:
            cursor.execute(sql, *((params,) if params else ()))
            return list(cursor.fetchall())

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        with self.connect() as connection, _cursor(connection) as cursor:
            cursor.execute(sql, *((params,) if params else ()))

    def tables(self) -> set[str]:
        if self.vendor == "sqlite":
            rows = self.query("SELECT name FROM sqlite_master WHERE type = 'table'")
        elif self.vendor == "postgresql":
            rows = self.query("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        else:
            rows = self.query(
                "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s",
                (self.name,),
            )
        return {row[0] for row in rows}

    def migration_rows(self) -> list[tuple[str, str]]:
        """Every (app, name) row of django_migrations, duplicates kept, sorted."""
        if "django_migrations" not in self.tables():
            return []
        return sorted(
            (row[0], row[1]) for row in self.query("SELECT app, name FROM django_migrations")
        )

    def history_rows(self) -> list[dict[str, Any]]:
        if "django_automigrate_migrationrun" not in self.tables():
            return []
        columns = ("id", "database", "trigger", "status", "planned", "applied", "failed_migration",
                   "error_summary")  # fmt: skip
        quote = "`" if self.vendor == "mysql" else '"'
        names = ", ".join(f"{quote}{column}{quote}" for column in columns)
        rows = self.query(f"SELECT {names} FROM django_automigrate_migrationrun ORDER BY id")
        return [dict(zip(columns, row, strict=True)) for row in rows]

    def schema_dump(self) -> list[tuple[Any, ...]]:
        """A normalized description of every table, column, index and constraint."""
        if self.vendor == "sqlite":
            return self.query(
                "SELECT type, name, tbl_name, sql FROM sqlite_master "
                "WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name"
            )
        if self.vendor == "postgresql":
            return [
                *self.query(
                    "SELECT table_name, column_name, data_type, is_nullable, column_default, "
                    "character_maximum_length, numeric_precision, numeric_scale, is_identity "
                    "FROM information_schema.columns WHERE table_schema = 'public' "
                    "ORDER BY table_name, column_name"
                ),
                *self.query(
                    "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) "
                    "FROM pg_constraint WHERE connamespace = 'public'::regnamespace "
                    "ORDER BY 1, 2"
                ),
                *self.query(
                    "SELECT tablename, indexname, indexdef FROM pg_indexes "
                    "WHERE schemaname = 'public' ORDER BY 1, 2"
                ),
            ]
        schema = (self.name,)
        return [
            *self.query(
                "SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT, EXTRA "
                "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s ORDER BY 1, 2",
                schema,
            ),
            *self.query(
                "SELECT TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX, COLUMN_NAME, NON_UNIQUE "
                "FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = %s ORDER BY 1, 2, 3",
                schema,
            ),
            *self.query(
                "SELECT TABLE_NAME, CONSTRAINT_NAME, COLUMN_NAME, REFERENCED_TABLE_NAME, "
                "REFERENCED_COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE "
                "WHERE TABLE_SCHEMA = %s ORDER BY 1, 2, 3",
                schema,
            ),
            *self.query(
                "SELECT TABLE_NAME, CONSTRAINT_NAME, CHECK_CLAUSE "
                "FROM information_schema.CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = %s "
                "ORDER BY 1, 2",
                schema,
            ),
        ]

    def drop(self) -> None:
        if self.vendor == "sqlite":
            for path in self.path.parent.glob(self.path.name + "*"):
                path.unlink()
            return
        with self.server.admin_connection() as connection, _cursor(connection) as cursor:
            if self.vendor == "postgresql":
                cursor.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
                for user in self.users:
                    cursor.execute(f'DROP ROLE IF EXISTS "{user}"')
            else:
                cursor.execute(f"DROP DATABASE IF EXISTS `{self.name}`")
                for user in self.users:
                    cursor.execute(f"DROP USER IF EXISTS '{user}'@'%'")


@contextlib.contextmanager
def _connect(vendor: str, config: dict[str, Any]) -> Iterator[Any]:
    if vendor == "sqlite":
        connection: Any = sqlite3.connect(config["NAME"], isolation_level=None)
    elif vendor == "postgresql":
        # The driver the tests run with (AUTOMIGRATE_TEST_DRIVERS), as Django's backend does.
        parameters = {
            "dbname": config["NAME"],
            "user": config["USER"] or None,
            "password": config["PASSWORD"] or None,
            "host": config["HOST"] or None,
            "port": config["PORT"] or None,
        }
        if drivers.requested()["postgresql"] == "psycopg2":
            import psycopg2

            connection = psycopg2.connect(**parameters)
            connection.autocommit = True
        else:
            import psycopg

            connection = psycopg.connect(**parameters, autocommit=True)
    else:
        # PyMySQL or mysqlclient (Django's backend imports PyMySQL as MySQLdb when switched).
        database_api: Any = importlib.import_module(
            "pymysql" if drivers.requested()["mysql"] == "pymysql" else "MySQLdb"
        )
        connection = database_api.connect(
            database=config["NAME"],
            user=config["USER"],
            password=config["PASSWORD"] or "",
            host=config["HOST"] or "127.0.0.1",
            port=int(config["PORT"] or 3306),
            autocommit=True,
        )
    try:
        yield connection
    finally:
        connection.close()


@contextlib.contextmanager
def _cursor(connection: Any) -> Iterator[Any]:
    cursor = connection.cursor()
    try:
        yield cursor
    finally:
        cursor.close()

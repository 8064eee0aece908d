"""A PostgreSQL server of the benchmarks' ``--postgres-url``: Django settings for a database on it,
and plain psycopg connections to make, read and drop benchmark databases."""

from __future__ import annotations

import dataclasses
import urllib.parse
from typing import Any


@dataclasses.dataclass(frozen=True)
class PostgresServer:
    """The server of ``--postgres-url``; databases made here are dropped by :meth:`drop`."""

    url: str

    @property
    def _parts(self) -> urllib.parse.SplitResult:
        return urllib.parse.urlsplit(self.url)

    def settings(self, name: str) -> dict[str, Any]:
        parts = self._parts
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": name,
            "USER": urllib.parse.unquote(parts.username or ""),
            "PASSWORD": urllib.parse.unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
        }

    def connect(self, name: str | None = None) -> Any:
        import psycopg

        parts = self._parts
        return psycopg.connect(
            dbname=name or parts.path.lstrip("/") or "postgres",
            user=urllib.parse.unquote(parts.username or "") or None,
            password=urllib.parse.unquote(parts.password or "") or None,
            host=parts.hostname,
            port=parts.port,
            autocommit=True,
        )

    def create(self, name: str) -> None:
        self.drop(name)  # left over by an interrupted run
        with self.connect() as admin:
            admin.execute(f'CREATE DATABASE "{name}"')

    def drop(self, name: str) -> None:
        with self.connect() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def version(self) -> str:
        with self.connect() as admin:
            row = admin.execute("SHOW server_version").fetchone()
        return str(row[0]).split()[0] if row else "?"

"""Which database drivers the tests run with: ``AUTOMIGRATE_TEST_DRIVERS``.

Django's backends pick their driver at import time: the postgresql backend ``import psycopg``
and falls back to psycopg2, the mysql backend ``import MySQLdb`` (mysqlclient, or PyMySQL
installed in its place). ``AUTOMIGRATE_TEST_DRIVERS=psycopg2,pymysql`` makes them pick the other
ones although psycopg 3 and mysqlclient are installed; the default is ``psycopg,mysqlclient``.

``tests/settings.py`` calls :func:`install` before any backend is loaded, and child processes
inherit the variable (``tests.utils.child_env``), so real processes use the same drivers.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

VARIABLE = "AUTOMIGRATE_TEST_DRIVERS"
#: Each driver: the vendor it serves, and the name of the module Django's backend ends up using.
DRIVERS = {
    "psycopg": ("postgresql", "psycopg"),
    "psycopg2": ("postgresql", "psycopg2"),
    "mysqlclient": ("mysql", "MySQLdb"),
    "pymysql": ("mysql", "pymysql"),
}
DEFAULTS = {"postgresql": "psycopg", "mysql": "mysqlclient"}
#: The mysqlclient version the newest supported Django requires (django/db/backends/mysql/base.py).
MYSQLCLIENT_VERSION = (2, 2, 1, "final", 0)


def requested(value: str | None = None) -> dict[str, str]:
    """The driver of each vendor, from ``value`` (default: the environment variable)."""
    if value is None:
        value = os.environ.get(VARIABLE, "")
    chosen = dict(DEFAULTS)
    for name in (part.strip().lower() for part in value.split(",")):
        if not name:
            continue
        if name not in DRIVERS:
            raise ValueError(f"{VARIABLE}: unknown driver {name!r}; known: {', '.join(DRIVERS)}")
        chosen[DRIVERS[name][0]] = name
    return chosen


def install(value: str | None = None) -> dict[str, str]:
    """Make Django's backends load the requested drivers; must run before they are imported."""
    chosen = requested(value)
    if chosen["postgresql"] == "psycopg2":
        # Django's postgresql backend (base.py, psycopg_any.py) tries ``import psycopg`` first:
        # a None entry makes that import, and every ``from psycopg…`` import, raise ImportError.
        _too_late("django.db.backends.postgresql.base", "psycopg2")
        sys.modules["psycopg"] = None  # type: ignore[assignment]
    if chosen["mysql"] == "pymysql":
        import pymysql

        # Django checks MySQLdb.version_info (5.2: >= 1.4.3, 6.x: >= 2.2.1); older PyMySQL releases
        # report 1.4.6, so raise it where needed, as projects using PyMySQL with Django do.
        if pymysql.version_info < MYSQLCLIENT_VERSION:
            pymysql.version_info = MYSQLCLIENT_VERSION
            pymysql.__version__ = ".".join(map(str, MYSQLCLIENT_VERSION[:3]))
        _too_late("django.db.backends.mysql.base", "pymysql")
        pymysql.install_as_MySQLdb()
    return chosen


def _too_late(backend: str, driver: str) -> None:
    if backend in sys.modules:
        raise RuntimeError(f"{VARIABLE}: {backend} was imported before {driver} could be chosen")


def loaded(vendor: str) -> str:
    """The driver Django's backend for ``vendor`` actually loaded (imports the backend)."""
    backend = importlib.import_module(f"django.db.backends.{vendor}.base")
    database: Any = vars(backend)["Database"]
    name: str = database.__name__
    return {"MySQLdb": "mysqlclient"}.get(name, name)


def connection_driver(connection: Any) -> str:
    """The driver of an open DB-API connection, by the module its class comes from."""
    root = type(connection).__module__.split(".")[0]
    return {"MySQLdb": "mysqlclient", "pymysql": "pymysql"}.get(root, root)

"""The driver switch (``AUTOMIGRATE_TEST_DRIVERS``, tests/drivers.py): the drivers the tests say
they run with are the ones Django loaded, in this process and in the real processes it starts;
a silent fallback to the default driver fails here."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings

from tests import drivers
from tests.servers import FreshDatabase
from tests.utils import run_command

pytestmark = pytest.mark.drivers

#: Run in a child process: which driver Django's backend loaded, and which one its open
#: connection comes from.
REPORT_DRIVER = """
import json
from django.db import connection
from tests import drivers
connection.ensure_connection()
print(json.dumps({
    "requested": drivers.requested()[connection.vendor],
    "loaded": drivers.loaded(connection.vendor),
    "connection": drivers.connection_driver(connection.connection),
}))
"""


def test_the_settings_installed_the_requested_drivers() -> None:
    assert drivers.requested() == settings.TEST_DRIVERS


@pytest.mark.parametrize("vendor", ["postgresql", "mysql"])
def test_django_loaded_the_requested_driver(vendor: str) -> None:
    assert drivers.loaded(vendor) == drivers.requested()[vendor]
    if vendor == "postgresql":
        from django.db.backends.postgresql import psycopg_any

        assert psycopg_any.is_psycopg3 is (drivers.requested()[vendor] == "psycopg")


@pytest.mark.parametrize("server", ["postgresql", "mysql"], indirect=True)
def test_a_django_connection_uses_the_requested_driver(
    database: FreshDatabase, django_connect: Callable[[FreshDatabase], Any]
) -> None:
    expected = drivers.requested()[database.vendor]

    assert drivers.connection_driver(django_connect(database).connection) == expected
    with database.connect() as raw:  # the tests' own connections (tests/servers.py) too
        assert drivers.connection_driver(raw) == expected


@pytest.mark.parametrize("server", ["postgresql", "mysql"], indirect=True)
def test_a_child_process_uses_the_same_driver(database: FreshDatabase) -> None:
    result = run_command(database.url, "shell", "-c", REPORT_DRIVER)

    assert result.returncode == 0, result.err
    report = json.loads(result.out.strip().splitlines()[-1])
    expected = drivers.requested()[database.vendor]
    assert report == {"requested": expected, "loaded": expected, "connection": expected}


def test_the_switch_names_drivers_per_vendor_and_refuses_unknown_ones() -> None:
    assert drivers.requested("") == {"postgresql": "psycopg", "mysql": "mysqlclient"}
    assert drivers.requested("psycopg2, PyMySQL") == {"postgresql": "psycopg2", "mysql": "pymysql"}
    assert drivers.requested("pymysql") == {"postgresql": "psycopg", "mysql": "pymysql"}
    with pytest.raises(ValueError, match="unknown driver 'oracledb'"):
        drivers.requested("psycopg2,oracledb")

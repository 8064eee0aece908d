from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.servers import URL_VARIABLES, FreshDatabase, Server, _url_from_container


@pytest.fixture(scope="session")
def _container_stack() -> Iterator[contextlib.ExitStack]:
    with contextlib.ExitStack() as stack:
        yield stack


#: Where a developer's own servers listen by default (trust / no password), tried before Docker.
LOCAL_URLS = {
    "postgresql": "postgres://postgres@127.0.0.1:5432/postgres",
    "mysql": "mysql://root@127.0.0.1:3306/mysql",
}


def _local_url(vendor: str) -> str | None:
    """The server's default local address, when something answers there as that user."""
    server = Server(vendor, LOCAL_URLS[vendor])
    try:
        with server.admin_connection():
            return server.url
    except Exception:
        return None


def _server(vendor: str, stack: contextlib.ExitStack, folder: Path) -> Server:
    if vendor == "sqlite":
        return Server("sqlite", folder=folder)
    url = (
        os.environ.get(URL_VARIABLES[vendor])
        or _local_url(vendor)
        or _url_from_container(vendor, stack)
    )
    server = Server(vendor, url)
    try:
        with server.admin_connection():
            pass
    except Exception as exc:
        from tests.servers import unavailable

        unavailable(vendor, f"cannot connect to {URL_VARIABLES[vendor]}: {exc}")
    return server


@pytest.fixture(scope="session")
def servers(
    _container_stack: contextlib.ExitStack, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Server]:
    """Servers already connected to, by vendor (filled lazily by the ``server`` fixture)."""
    return {}


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def server(
    request: pytest.FixtureRequest,
    servers: dict[str, Server],
    _container_stack: contextlib.ExitStack,
    tmp_path: Path,
) -> Server:
    vendor: str = request.param
    if vendor == "sqlite":
        return Server("sqlite", folder=tmp_path)
    if vendor not in servers:
        servers[vendor] = _server(vendor, _container_stack, tmp_path)
    return servers[vendor]


@pytest.fixture
def database(server: Server) -> Iterator[FreshDatabase]:
    """A fresh, empty database on each backend, dropped afterwards."""
    db = server.create_database()
    try:
        yield db
    finally:
        db.drop()


@pytest.fixture
def django_connect(django_db_blocker: Any) -> Iterator[Callable[[FreshDatabase], Any]]:
    """Open Django connections (its backend, on the drivers the tests run with) to fresh
    databases, outside the test database; closed afterwards."""
    import environ
    from django.db.utils import ConnectionHandler

    opened: list[Any] = []

    def connect(db: FreshDatabase) -> Any:
        connection = ConnectionHandler({"default": environ.Env.db_url_config(db.url)})["default"]
        opened.append(connection)
        connection.ensure_connection()
        return connection

    with django_db_blocker.unblock():
        try:
            yield connect
        finally:
            for connection in opened:
                with contextlib.suppress(Exception):
                    connection.close()


def _unapplied(target: str) -> Iterator[None]:
    from django.core.management import call_command

    call_command("migrate", "testapp", target, verbosity=0)
    try:
        yield
    finally:
        call_command("migrate", verbosity=0)


@pytest.fixture
def one_pending(transactional_db: None) -> Iterator[None]:
    """The test database with testapp's last migration unapplied; applied again afterwards."""
    yield from _unapplied("0022")


@pytest.fixture
def two_pending(transactional_db: None) -> Iterator[None]:
    """The test database with testapp's last two migrations unapplied."""
    yield from _unapplied("0021")


# --- which backends ran: one line at the end of every session ------------------------------

_outcomes: dict[str, dict[str, int]] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Count each real-server test's outcome by backend (runs in xdist's controller too)."""
    if report.when != "call" and not (report.when == "setup" and report.skipped):
        return
    params = report.nodeid.rpartition("[")[2]
    for vendor in ("postgresql", "mysql"):
        if vendor in params:
            counts = _outcomes.setdefault(vendor, {})
            counts[report.outcome] = counts.get(report.outcome, 0) + 1


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return
    parts = [
        f"{vendor}: " + ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items()))
        for vendor, counts in sorted(_outcomes.items())
    ]
    missing = [vendor for vendor in ("postgresql", "mysql") if vendor not in _outcomes]
    line = "real-server tests: " + ("; ".join(parts) or "none ran")
    if missing:
        line += f" (no {', '.join(missing)} test ran)"
    terminalreporter.write_line(line)

"""A real rolling deploy: release A serving under gunicorn, release B started beside it with
startup runs on, A's servers stopped one by one, traffic reading and writing throughout.

Release B removes a NOT NULL column (Order.legacy_code), deletes a model (Coupon, whose rows
point at orders) and adds a NOT NULL column with a default (Order.status). Applied at once,
each breaks A: its SELECTs name legacy_code, its INSERTs fill Coupon, its INSERTs leave status
out. With the gate on, B defers them: zero 5xx answers from either release; once A is gone the
contract step runs once, and the schema is what plain ``migrate`` makes. With the gate off, the
same deploy answers 5xx: the test sees the hazard it guards against.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from typing import Any

import pytest

from tests.servers import FreshDatabase, Server
from tests.utils import (
    REPO,
    Result,
    child_env,
    finish,
    free_port,
    get,
    start_command,
    start_server,
    stop,
    wait_for,
)

pytestmark = pytest.mark.servers  # gunicorn processes: run once, on the newest Django

RELEASES = REPO / "tests" / "rolling"
#: Traffic rounds (write, read, delete on every server still in rotation) at each stage.
ROUNDS = 15


def run_release(url: str, release: str, *args: str, **extra: str) -> Result:
    """``python -m django ARGS`` with release ``release``'s code."""
    return finish(start_command(url, *args, **release_env(release, **extra)))


def release_env(release: str, **extra: str) -> dict[str, str]:
    """The environment of release ``a`` or ``b``: its code on the path, production settings,
    startup runs on, a fast heartbeat and a short grace period."""
    return {
        "PYTHONPATH": os.pathsep.join((str(REPO), str(RELEASES / release))),
        "AUTOMIGRATE_TEST_EXTRA_APPS": "rollapp",
        "AUTOMIGRATE_TEST_LOG_LEVEL": "INFO",
        "AUTOMIGRATE_ENVIRONMENT": "production",
        "AUTOMIGRATE_IN_PRODUCTION": "true",
        "AUTOMIGRATE_CREATE_DATABASE": "true",
        "AUTOMIGRATE_RELEASE": release.upper(),
        "AUTOMIGRATE_FLEET_HEARTBEAT": "1",
        "AUTOMIGRATE_CONTRACT_GRACE": "2",
        **extra,
    }


class Traffic(threading.Thread):
    """Writes, reads and deletes through every server in rotation, round after round."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.targets: dict[str, int] = {}  # name -> port
        self.answers: Counter[tuple[str, int]] = Counter()
        self.failures: list[str] = []
        self.rounds = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._round_done = threading.Condition()

    def run(self) -> None:
        while not self._stopping.is_set():
            with self._lock:
                targets = dict(self.targets)
            for name, port in targets.items():
                for path in ("write", "read", "delete"):
                    try:
                        status, body = get(f"http://127.0.0.1:{port}/roll/{path}/", timeout=30)
                    except OSError as exc:
                        status, body = 0, str(exc)
                    self.answers[(name, status)] += 1
                    if status != 200:
                        self.failures.append(f"{name} {path}: {status} {body[:300]}")
            with self._round_done:
                self.rounds += 1
                self._round_done.notify_all()

    def wait_rounds(self, count: int, timeout: float = 120) -> None:
        """Handshake: return once ``count`` more rounds went through every target."""
        with self._round_done:
            goal = self.rounds + count + 1  # the round under way may predate the change
            assert self._round_done.wait_for(lambda: self.rounds >= goal, timeout), self.failures

    def add(self, name: str, port: int) -> None:
        with self._lock:
            self.targets[name] = port

    def drain(self, name: str) -> None:
        """Out of rotation, as a load balancer drains a server before it stops."""
        with self._lock:
            del self.targets[name]
        self.wait_rounds(1)

    def stop(self) -> None:
        self._stopping.set()
        self.join(60)

    def server_errors(self) -> int:
        return sum(count for (_name, status), count in self.answers.items() if status >= 500)


def fleet(database: FreshDatabase, release: str) -> list[dict[str, Any]]:
    result = run_release(database.url, release, "automigrate", "--fleet", "--format", "json")
    assert result.returncode == 0, result.err
    members: list[dict[str, Any]] = result.json()["fleets"]["default"]
    return members


def wait_for_fleet(database: FreshDatabase, release: str, live: int, deadline: float = 60) -> None:
    """Handshake: the fleet shows ``live`` processes of ``release``."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        found = [m for m in fleet(database, "a") if m["live"] and m["release"] == release]
        if len(found) >= live:
            return
        time.sleep(0.5)
    raise AssertionError(f"fewer than {live} live members of release {release}")


def contract_runs(database: FreshDatabase) -> list[dict[str, Any]]:
    return [row for row in database.history_rows() if row["trigger"] == "contract"]


def serve(database: FreshDatabase, release: str, **extra: str) -> tuple[subprocess.Popen[str], int]:
    port = free_port()
    process = start_server(
        database.url, "gunicorn", "--workers", "2", "--bind", f"127.0.0.1:{port}",
        "--graceful-timeout", "10", **release_env(release, **extra),
    )  # fmt: skip
    status, body = wait_for(f"http://127.0.0.1:{port}/roll/read/", process, timeout=120)
    assert status == 200, body
    return process, port


def rolling_deploy(database: FreshDatabase, **b_settings: str) -> tuple[Traffic, list[str]]:
    """Release A on two gunicorn servers, B started beside them, A stopped one by one."""
    migrated = run_release(database.url, "a", "automigrate")
    assert migrated.returncode == 0, migrated.err
    logs: list[str] = []
    traffic = Traffic()
    a1, port1 = serve(database, "a")
    a2, port2 = serve(database, "a")
    b = None
    try:
        wait_for_fleet(database, "A", live=4)
        traffic.add("A1", port1)
        traffic.add("A2", port2)
        traffic.start()
        traffic.wait_rounds(3)
        b, port_b = serve(database, "b", **b_settings)
        traffic.add("B", port_b)
        traffic.wait_rounds(ROUNDS)  # both releases serve side by side
        traffic.drain("A1")
        logs.append(stop(a1).err)
        traffic.wait_rounds(ROUNDS)
        traffic.drain("A2")
        logs.append(stop(a2).err)
        traffic.wait_rounds(ROUNDS)
        if b_settings.get("AUTOMIGRATE_DEFER_INCOMPATIBLE") != "false":
            end = time.monotonic() + 60  # heartbeat 1 s, grace 3 s (three missed beats)
            while not contract_runs(database) and time.monotonic() < end:
                time.sleep(0.5)
            traffic.wait_rounds(ROUNDS)  # and B serves on the final schema
    finally:
        traffic.stop()
        for process in (a1, a2, b):
            if process is not None:
                logs.append(stop(process).err)
    return traffic, logs


@pytest.mark.parametrize("server", ["sqlite", "postgresql", "mysql"], indirect=True)
def test_a_rolling_deploy_answers_no_errors_and_contracts_once_the_old_release_is_gone(
    server: Server, database: FreshDatabase
) -> None:
    traffic, logs = rolling_deploy(database)
    plain = server.create_database()
    try:
        made = run_release(plain.url, "b", "migrate")
        assert made.returncode == 0, made.err
        expected = plain.schema_dump()
    finally:
        plain.drop()

    assert traffic.server_errors() == 0, (traffic.failures[:3], errors_in(logs))
    assert not traffic.failures, traffic.failures[:10]
    assert traffic.answers[("A1", 200)]
    assert traffic.answers[("B", 200)]
    runs = database.history_rows()
    deferring = [r for r in runs if r["trigger"] == "startup" and r["applied"]]
    assert [json.loads(r["applied"]) if isinstance(r["applied"], str) else r["applied"]
            for r in deferring] == [["rollapp.0002_release_b"]], runs  # fmt: skip
    contracts = contract_runs(database)
    assert [c["status"] for c in contracts] == ["succeeded"], runs
    assert normalized(database.schema_dump(), database) == normalized(expected, plain)


def errors_in(logs: list[str]) -> list[str]:
    """The tracebacks' last lines in the servers' logs."""
    return [line for log in logs for line in log.splitlines() if "Error" in line][:20]


def normalized(dump: list[tuple[Any, ...]], database: FreshDatabase) -> list[tuple[Any, ...]]:
    """The schema, without the database's own name (MySQL/MariaDB's rows carry none)."""
    return sorted(tuple(str(value) for value in row) for row in dump)


@pytest.mark.parametrize("server", ["sqlite", "postgresql", "mysql"], indirect=True)
def test_the_same_rolling_deploy_without_the_gate_answers_server_errors(
    database: FreshDatabase,
) -> None:
    traffic, _logs = rolling_deploy(database, AUTOMIGRATE_DEFER_INCOMPATIBLE="false")

    assert traffic.server_errors() > 0, traffic.answers
    broken = {name for (name, status) in traffic.answers if status >= 500}
    assert broken <= {"A1", "A2"}, traffic.failures[:10]
    assert not contract_runs(database)


@pytest.mark.parametrize("server", ["sqlite", "postgresql", "mysql"], indirect=True)
def test_the_dry_run_shows_what_would_wait_for_whom_and_only_the_sql_that_runs_now(
    database: FreshDatabase,
) -> None:
    """A process of release A serves: B's dry run names the three deferred operations and
    release A, and its SQL (and so its lock forecast) is what B's run would execute now: no
    DROP of the column or the table while A is there."""
    migrated = run_release(database.url, "a", "automigrate")
    assert migrated.returncode == 0, migrated.err
    member = subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "fleetmember.py"), "web"],
        cwd=REPO, env=child_env(database.url, **release_env("a")),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert member.stdout is not None
        assert member.stdout.readline().strip() == "joined", member.communicate()[1][-2000:]
        preview = run_release(database.url, "b", "automigrate", "--dry-run", "--format", "json")
    finally:
        member.communicate("", timeout=60)

    assert preview.returncode == 0, preview.err
    (report,) = preview.json()["databases"]
    assert [(d["migration"], d["operation"], d["kind"]) for d in report["deferred"]] == [
        ("rollapp.0002_release_b", 0, "drop_column"),
        ("rollapp.0002_release_b", 1, "drop_default"),
        ("rollapp.0002_release_b", 2, "drop_table"),
    ]
    assert "release A (1 process)" in report["waiting_for"]
    (planned,) = [m for m in report["migrations"] if m["migration"] == "rollapp.0002_release_b"]
    sql = "\n".join(planned["sql"])
    assert "status" in sql  # the new column is added now
    # SQLite relaxes a column by remaking its table (copy, drop, rename): never dropped for good.
    dropped = re.findall(r"DROP TABLE [`\"]rollapp_coupon[`\"]", sql)
    assert len(dropped) == len(re.findall(r"RENAME TO [`\"]rollapp_coupon[`\"]", sql)), sql
    assert not re.search(r"DROP COLUMN [`\"]legacy_code[`\"]", sql), sql
    remade = re.findall(r"CREATE TABLE [`\"]new__rollapp_order[`\"] \([^;]*", sql)
    assert all("legacy_code" in table for table in remade), sql
    assert "CANNOT BE WRITTEN AS SQL" not in sql
    assert run_release(database.url, "b", "automigrate", "--check").returncode != 0


def test_release_directories_differ_only_as_the_test_says() -> None:
    """Both releases share A's first migration, byte for byte: B only adds one."""
    a = RELEASES / "a" / "rollapp" / "migrations"
    b = RELEASES / "b" / "rollapp" / "migrations"

    assert (a / "0001_initial.py").read_bytes() == (b / "0001_initial.py").read_bytes()
    assert sorted(p.name for p in b.glob("0*.py")) == ["0001_initial.py", "0002_release_b.py"]

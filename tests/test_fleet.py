"""The fleet registry with 64 real processes: each registers and beats; killed ones expire,
stopped ones say so; ``--fleet`` lists them by release and graph."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any

import pytest

from tests.servers import FreshDatabase
from tests.test_servers import MATRIX, command_line
from tests.utils import (
    REPO,
    child_env,
    finish,
    free_port,
    pids_serving,
    start_command,
    stop,
    wait_for,
)

pytestmark = pytest.mark.servers  # real processes by the dozen: run once, on the newest Django

MEMBERS = 64


def production() -> dict[str, str]:
    """Production settings (the fleet is on there), with a two-second heartbeat."""
    return {"AUTOMIGRATE_ENVIRONMENT": "production", "AUTOMIGRATE_FLEET_HEARTBEAT": "2"}


def fleet(database: FreshDatabase) -> list[dict[str, Any]]:
    result = finish(
        start_command(database.url, "automigrate", "--fleet", "--format", "json", **production())
    )
    assert result.returncode == 0, result.err
    members: list[dict[str, Any]] = result.json()["fleets"]["default"]
    return members


def wait_until(database: FreshDatabase, condition: Any, deadline: float = 90) -> list[Any]:
    """Handshake: poll ``--fleet`` until ``condition(members)`` holds."""
    end = time.monotonic() + deadline
    while True:
        members = fleet(database)
        if condition(members) or time.monotonic() > end:
            return members
        time.sleep(0.5)


@pytest.mark.parametrize("server", ["postgresql", "mysql", "sqlite"], indirect=True)
def test_sixty_four_processes_register_beat_expire_and_stop(database: FreshDatabase) -> None:
    migrated = finish(
        start_command(database.url, "automigrate", AUTOMIGRATE_CREATE_DATABASE="true")
    )
    assert migrated.returncode == 0, migrated.err
    members = []
    try:
        for number in range(MEMBERS):
            release = "41" if number % 2 else "42"
            members.append(
                subprocess.Popen(
                    [sys.executable, str(REPO / "tests" / "fleetmember.py"), "worker"],
                    cwd=REPO,
                    env=child_env(
                        database.url,
                        AUTOMIGRATE_RELEASE=release,
                        AUTOMIGRATE_TEST_LOG_LEVEL="WARNING",
                        **production(),
                    ),
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
        for member in members:  # the handshake: each one's row is written
            assert member.stdout is not None
            assert member.stdout.readline().strip() == "joined", member.communicate()[1][-2000:]
        registered = wait_until(
            database, lambda found: len(found) == MEMBERS and all(m["live"] for m in found)
        )
        killed, stopped = members[: MEMBERS // 2], members[MEMBERS // 2 :]
        for member in killed:
            os.kill(member.pid, signal.SIGKILL)
            member.communicate(timeout=30)
        # Three missed beats of two seconds each, and they are gone.
        expired = wait_until(database, lambda found: sum(m["live"] for m in found) == len(stopped))
        for member in stopped:
            member.communicate("", timeout=60)
        after = wait_until(database, lambda found: not any(m["live"] for m in found))
        listing = finish(start_command(database.url, "automigrate", "--fleet", **production()))
    finally:
        for member in members:
            if member.poll() is None:
                member.kill()
            if member.returncode is None or not member.stdin or not member.stdin.closed:
                member.communicate(timeout=30)

    assert len(registered) == MEMBERS
    assert {m["pid"] for m in registered} == {member.pid for member in members}
    assert [m for m in registered if not m["live"]] == []
    assert {m["release"] for m in registered} == {"41", "42"}
    assert len({m["graph"] for m in registered}) == 1  # one code, one fingerprint
    live_pids = {m["pid"] for m in expired if m["live"]}
    assert live_pids == {member.pid for member in stopped}
    assert [m["stopped_at"] is None for m in expired if not m["live"]] == [True] * len(killed)
    by_pid = {m["pid"]: m for m in after}
    assert all(by_pid[member.pid]["stopped_at"] for member in stopped)
    assert not any(by_pid[member.pid]["stopped_at"] for member in killed)
    assert not any(m["live"] for m in after)
    assert listing.returncode == 0, listing.err
    assert f"default: 0 live process(es), {MEMBERS} gone" in listing.out
    assert "release 41, graph" in listing.out
    assert "gone (no heartbeat)" in listing.out
    assert "stopped, last seen" in listing.out


FORKING = ["uwsgi", "uwsgi-lazy-apps", "gunicorn-preload", "gunicorn-sync"]
WORKERS = 4


@pytest.mark.parametrize("name", FORKING)
@pytest.mark.parametrize("server", ["postgresql"], indirect=True)
def test_every_worker_of_a_forking_server_serves_and_beats(
    name: str, database: FreshDatabase
) -> None:
    """With the fleet on, a master that loads the app before it forks (uWSGI, ``--preload``)
    must hand its workers no thread of ours: a uWSGI worker forked while one held the GIL hung
    before its first request. Each worker serves, and each is a live member of its own."""
    invocation = MATRIX[name].invocation.replace(" 2 ", f" {WORKERS} ")
    port = free_port()
    server = subprocess.Popen(
        command_line(invocation, port),
        cwd=REPO,
        env=child_env(database.url, AUTOMIGRATE_IN_PRODUCTION="true", **production()),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # uWSGI logs on stdout
        text=True,
        start_new_session=True,
    )
    try:
        status, body = wait_for(f"http://127.0.0.1:{port}/tags/", server, timeout=120)
        assert status == 200, body
        serving = pids_serving(port, WORKERS)
        members = wait_until(
            database, lambda found: serving <= {m["pid"] for m in found if m["live"]}
        )
    finally:
        log = stop(server).out or ""

    assert len(serving) == WORKERS, log[-3000:]
    assert serving <= {m["pid"] for m in members if m["live"]}, (members, log[-3000:])
    assert "Traceback" not in log, log[-5000:]

"""Each backend's lock, driven from real processes against real servers."""

from __future__ import annotations

import hashlib
import json
import re
import signal
import subprocess
import time

import pytest

from django_automigrate.locks.mysql import MAX_LOCK_NAME, lock_name
from django_automigrate.locks.postgresql import advisory_key
from tests.servers import FreshDatabase
from tests.utils import start_lock_holder, start_lockctl

pytestmark = pytest.mark.drivers


def lockctl(db: FreshDatabase, *args: str) -> subprocess.Popen[str]:
    return start_lockctl(db.url, *args)


def start_holder(db: FreshDatabase, seconds: float = 60) -> subprocess.Popen[str]:
    return start_lock_holder(db.url, seconds)


def kill(process: subprocess.Popen[str]) -> None:
    """SIGKILL, as the OOM killer or a node failure would, then collect the pipes."""
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)


def lockctl_output(db: FreshDatabase, *args: str) -> str:
    process = lockctl(db, *args)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    return out.strip()


def test_advisory_key_is_a_stable_signed_64_bit_hash_of_the_database_name() -> None:
    expected = int.from_bytes(
        hashlib.sha256(b"django-automigrate:shop").digest()[:8], "big", signed=True
    )

    key = advisory_key("shop")

    assert key == expected
    assert -(2**63) <= key < 2**63
    assert advisory_key("shop") != advisory_key("shop2")


@pytest.mark.parametrize("length", [1, 45, 46, 64, 200])
def test_mysql_lock_name_fits_the_64_character_limit_and_stays_distinct(length: int) -> None:
    name = lock_name("d" * length)

    assert len(name) <= MAX_LOCK_NAME
    assert name != lock_name("e" * length)
    assert name.startswith("django_automigrate:")


def test_a_second_process_times_out_and_is_told_who_holds_the_lock(database: FreshDatabase) -> None:
    holder = start_holder(database)
    try:
        report = json.loads(lockctl_output(database, "acquire", "1"))
        shown_holder = lockctl_output(database, "holder")
    finally:
        kill(holder)

    assert report["acquired"] is False
    assert report["exit_code"] == 3
    assert report["name"] in report["error"]
    assert "held by" in report["error"]
    if database.vendor == "mysql":
        assert "connection" in report["holder"]
    else:
        # PostgreSQL names the holder through application_name, SQLite through its owner file.
        assert f"pid {holder.pid}" in report["holder"]
    # The same holder, named the same way (MySQL adds how long it has been in its state).
    assert re.sub(r"for \d+s", "", shown_holder) == re.sub(r"for \d+s", "", report["holder"])


def test_a_killed_holder_releases_the_lock_at_once(database: FreshDatabase) -> None:
    holder = start_holder(database)

    kill(holder)
    started = time.monotonic()
    report = json.loads(lockctl_output(database, "acquire", "10"))

    assert report["acquired"] is True
    assert time.monotonic() - started < 8
    assert lockctl_output(database, "holder") == "none"


def test_a_released_lock_can_be_taken_again(database: FreshDatabase) -> None:
    holder = start_holder(database, seconds=0.5)
    out, err = holder.communicate(timeout=30)
    assert "released" in out, err

    report = json.loads(lockctl_output(database, "acquire", "0"))

    assert report["acquired"] is True


@pytest.mark.parametrize("server", ["postgresql", "mysql"], indirect=True)
def test_a_lock_whose_connection_is_killed_is_reported_lost(database: FreshDatabase) -> None:
    out = lockctl_output(database, "lose")

    assert out.startswith("LockLost: Lost the migration lock")
    assert "database 'default'" in out

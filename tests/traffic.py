"""Live traffic for tests: a process that queries a table in a loop and measures every query.

``python -m tests.traffic VENDOR URL STOP_FILE`` reads ``testapp_review`` and writes a row of
``testapp_tag`` in each round, each in its own short transaction (as a web request would), with a
lock wait limit of its own (5 s) that is ten times the statement lock timeout the tests give a
run. It prints ``ready`` after its first round, then, once ``STOP_FILE`` exists, one JSON line:
rounds, errors and the longest query in seconds.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import environ

from tests.servers import _connect, _cursor

#: How long one of the traffic's queries may wait for a lock before it counts as an error. On
#: SQLite the blocker itself holds the one write lock, so the traffic's writes wait for it too.
TRAFFIC_LOCK_WAIT_SECONDS = 5
SQLITE_BUSY_SECONDS = 60


def _limit_waits(vendor: str, cursor: Any, connection: Any) -> None:
    if vendor == "postgresql":
        cursor.execute(f"SET lock_timeout = '{TRAFFIC_LOCK_WAIT_SECONDS}s'")
    elif vendor == "mysql":
        cursor.execute(f"SET SESSION lock_wait_timeout = {TRAFFIC_LOCK_WAIT_SECONDS}")
        connection.autocommit(True)
    else:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_SECONDS * 1000}")


def main(vendor: str, url: str, stop_file: str) -> None:
    stop = Path(stop_file)
    rounds = errors = 0
    longest = 0.0
    first_error = ""
    with (
        _connect(vendor, environ.Env.db_url_config(url)) as connection,
        _cursor(connection) as cursor,
    ):
        _limit_waits(vendor, cursor, connection)
        while not stop.exists():
            started = time.monotonic()
            try:
                cursor.execute("SELECT COUNT(*) FROM testapp_review")
                cursor.fetchall()
                cursor.execute(
                    "INSERT INTO testapp_tag (name) VALUES (%s)"
                    if vendor != "sqlite"
                    else "INSERT INTO testapp_tag (name) VALUES (?)",
                    [f"traffic-{rounds}-{time.time_ns()}"],
                )
            except Exception as exc:
                errors += 1
                first_error = first_error or f"{type(exc).__name__}: {exc}"
            longest = max(longest, time.monotonic() - started)
            rounds += 1
            if rounds == 1:
                print("ready", flush=True)
            time.sleep(0.01)  # a busy site, not a tight loop
    print(
        json.dumps(
            {"rounds": rounds, "errors": errors, "longest": longest, "first_error": first_error}
        ),
        flush=True,
    )


if __name__ == "__main__":
    main(*sys.argv[1:4])

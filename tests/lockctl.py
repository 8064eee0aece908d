"""Drive a migration lock from a real process: ``python -m tests.lockctl ACTION [ARG]``.

hold SECONDS   take the lock, print "held", keep it SECONDS (or until killed), release
acquire WAIT   try to take the lock for WAIT seconds; print a JSON report; release
holder         print who holds the lock, or "none"
lose           take the lock, kill its connection from another one, print what verify() says
"""

from __future__ import annotations

import json
import sys
import time

import django


def main(action: str, argument: str = "0") -> int:
    django.setup()
    from django.db import connections

    from django_automigrate.conf import get_settings
    from django_automigrate.exceptions import AutomigrateError, LockLost, LockTimeout
    from django_automigrate.locks import lock_for

    lock = lock_for(connections["default"], get_settings(), use_lock=True)
    if action == "hold":
        lock.acquire(30)
        print("held", lock.name, flush=True)
        time.sleep(float(argument))
        lock.release()
        print("released", flush=True)
    elif action == "acquire":
        report: dict[str, object] = {"name": lock.name}
        try:
            report["waited"] = lock.acquire(float(argument))
            report["acquired"] = True
        except LockTimeout as exc:
            report.update(
                acquired=False, error=str(exc), holder=exc.holder, exit_code=exc.exit_code
            )
        finally:
            lock.release()
        print(json.dumps(report), flush=True)
    elif action == "holder":
        print(lock.holder() or "none", flush=True)
        lock.release()
    elif action == "lose":
        lock.acquire(10)
        _kill_lock_connection(lock)
        try:
            lock.verify()
            print("still held", flush=True)
        except LockLost as exc:
            print(f"LockLost: {exc}", flush=True)
        lock.release()
    else:
        raise AutomigrateError(f"unknown action {action!r}")
    return 0


def _kill_lock_connection(lock: object) -> None:
    from django.db import connections

    # The lock lives on the session that migrates (the alias's connection); a lease on its own.
    lock_connection = getattr(lock, "lease_connection", None) or lock.connection  # type: ignore[attr-defined]
    with lock_connection.cursor() as cursor:
        if lock_connection.vendor == "postgresql":
            cursor.execute("SELECT pg_backend_pid()")
        else:
            cursor.execute("SELECT CONNECTION_ID()")
        row = cursor.fetchone()
    from django_automigrate.locks.base import dedicated_connection

    killer = dedicated_connection(connections["default"])
    with killer.cursor() as cursor:
        if killer.vendor == "postgresql":
            cursor.execute("SELECT pg_terminate_backend(%s)", [row[0]])
        else:
            cursor.execute(f"KILL {int(row[0])}")
    time.sleep(0.5)


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))

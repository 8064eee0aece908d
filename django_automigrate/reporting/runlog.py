"""The log lines of a run: the lock wait and one summary per database (INFO, ERROR when it
failed, DEBUG when there was nothing to do). Fields are in ``extra`` for JSON log formatters.

While ``manage.py automigrate`` prints a run's progress and summary itself, the same records go
out at DEBUG (:func:`printed_by_command`): the recommended LOGGING (INFO) then shows each fact
once, and log shippers that want everything still get it.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Iterator
from typing import Any

from django_automigrate.run.results import NOTHING_TO_DO, DatabaseResult

logger = logging.getLogger("django_automigrate")


#: A lock wait is worth a warning only once it is this long; then every ``WAIT_WARN_EVERY``.
WAIT_WARN_AFTER = 10.0
WAIT_WARN_EVERY = 30.0

_printed = contextvars.ContextVar("automigrate_printed_by_command", default=False)


@contextlib.contextmanager
def printed_by_command() -> Iterator[None]:
    """Within: the command prints progress and summaries itself; their records go at DEBUG."""
    token = _printed.set(True)
    try:
        yield
    finally:
        _printed.reset(token)


def progress_level(level: int) -> int:
    """``level``, or DEBUG while the command prints the same thing itself."""
    return logging.DEBUG if _printed.get() else level


def wait_logger(alias: str, lock_name: str) -> Any:
    warned_at: list[float] = []

    def on_wait(holder: str | None, waited: float) -> None:
        long_enough = waited >= WAIT_WARN_AFTER
        due = not warned_at or waited - warned_at[-1] >= WAIT_WARN_EVERY - 1
        level = logging.WARNING if long_enough and due else logging.DEBUG
        if level == logging.WARNING:
            warned_at.append(waited)
        logger.log(
            level,
            "automigrate: %s: waiting for the migration lock %s, held by %s (%.0fs so far)",
            alias,
            lock_name,
            holder or "another process",
            waited,
            extra={"database": alias, "lock": lock_name, "holder": holder, "lock_wait": waited},
        )

    return on_wait


def log_summary(result: DatabaseResult, trigger: str) -> None:
    # One line per database and run; the fields in `extra` are for JSON log formatters.
    extra = {
        "database": result.alias,
        "status": str(result.status),
        "trigger": trigger,
        "planned_count": len(result.planned),
        "applied_count": len(result.applied),
        "duration": round(result.duration, 3),
        "lock_wait": round(result.lock_wait, 3),
        "lock": result.lock,
        "run_id": result.run_id,
        "failed_migration": result.failed_migration,
    }
    if result.status == NOTHING_TO_DO and result.applied_by_another_process:
        logger.log(
            progress_level(logging.INFO),
            "automigrate: %s: nothing to do: another process applied the migrations while this "
            "one waited %.1fs for the lock",
            result.alias,
            result.lock_wait,
            extra=extra,
        )
    elif result.status == NOTHING_TO_DO:
        logger.debug("automigrate: %s: nothing to do", result.alias, extra=extra)
    elif result.exit_code:
        failed = f", failed at {result.failed_migration}" if result.failed_migration else ""
        logger.log(
            progress_level(logging.ERROR),
            "automigrate: %s: %s after %.1fs (applied %d%s): %s",
            result.alias,
            result.status,
            result.duration,
            len(result.applied),
            failed,
            result.error,
            extra=extra,
        )
    else:
        logger.log(
            progress_level(logging.INFO),
            "automigrate: %s: applied %d migration(s) in %.1fs (lock wait %.1fs), %s",
            result.alias,
            len(result.applied),
            result.duration,
            result.lock_wait,
            result.status,
            extra=extra,
        )

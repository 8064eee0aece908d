"""The log lines of a run: the lock wait (WARNING) and one summary per database (INFO, or ERROR
when it failed). Fields are in ``extra`` for JSON log formatters."""

from __future__ import annotations

import logging
from typing import Any

from django_automigrate.run.results import NOTHING_TO_DO, DatabaseResult

logger = logging.getLogger("django_automigrate")


def wait_logger(alias: str, lock_name: str) -> Any:
    def on_wait(holder: str | None, waited: float) -> None:
        logger.warning(
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
        logger.info(
            "automigrate: %s: nothing to do: another process applied the migrations while this "
            "one waited %.1fs for the lock",
            result.alias,
            result.lock_wait,
            extra=extra,
        )
    elif result.status == NOTHING_TO_DO:
        logger.info("automigrate: %s: nothing to do", result.alias, extra=extra)
    elif result.exit_code:
        failed = f", failed at {result.failed_migration}" if result.failed_migration else ""
        logger.error(
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
        logger.info(
            "automigrate: %s: applied %d migration(s) in %.1fs (lock wait %.1fs), %s",
            result.alias,
            len(result.applied),
            result.duration,
            result.lock_wait,
            result.status,
            extra=extra,
        )

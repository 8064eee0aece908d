"""What the end of each database's run sets off, in one place: signals and metrics.

The runner and ``--rollback`` call :func:`started` when a run begins applying and :func:`ended`
for every database they report on. Nothing here may stop or change a run: receivers are called
robustly and their errors logged.
"""

from __future__ import annotations

import logging
from typing import Any

from django.dispatch import Signal

from django_automigrate import signals
from django_automigrate.models import MigrationRun
from django_automigrate.reporting import metrics

logger = logging.getLogger("django_automigrate")

#: Outcomes that ``run_failed`` reports. A lock timeout is not one: nothing was attempted (the
#: holder is migrating), and a startup run waits on; logs, exit code 3 and metrics carry it.
FAILURES = frozenset(
    {"failed", "rolled_back", "timed_out", "needs_attention", "database_missing", "too_disruptive"}
)


def started(*, alias: str, trigger: str, planned: list[str], run_id: int | None) -> None:
    _send(signals.run_started, alias=alias, trigger=trigger, planned=planned, run_id=run_id)


def ended(
    result: Any,
    *,
    trigger: str,
    waited_for_lock: bool,
    pending: int | None,
    started: bool,
) -> None:
    """Report one database's outcome. ``result`` is a ``DatabaseResult`` (``RollbackResult``
    for ``--rollback``), with ``alias``, ``status``, ``run_id``, ``error``, ``duration`` and
    ``lock_wait``; ``started``: the
    run began applying (:func:`started` was called for it)."""
    status = str(result.status)  # plain str for labels and comparisons
    metrics.record_run(
        alias=result.alias,
        status=status,
        trigger=trigger,
        duration=result.duration,
        lock_wait=result.lock_wait,
        waited_for_lock=waited_for_lock,
        pending=pending,
        started=started,
    )
    common = {"alias": result.alias, "trigger": trigger, "run_id": result.run_id, "result": result}
    if status == "succeeded":
        _send(signals.run_finished, **common)
    elif status in FAILURES:
        _send(signals.run_failed, error=result.error, **common)


def _send(signal: Signal, **kwargs: Any) -> None:
    for receiver, response in signal.send_robust(sender=MigrationRun, **kwargs):
        if isinstance(response, Exception):
            logger.error(
                "automigrate: a receiver of %s raised %s: %s (the run is not affected)",
                _name(signal),
                type(response).__name__,
                response,
                exc_info=response,
                extra={"database": kwargs.get("alias"), "receiver": _qualname(receiver)},
            )


def _name(signal: Signal) -> str:
    for name in ("run_started", "run_finished", "run_failed"):
        if getattr(signals, name) is signal:
            return name
    return "a signal"


def _qualname(receiver: Any) -> str:
    return f"{getattr(receiver, '__module__', '?')}.{getattr(receiver, '__qualname__', receiver)}"

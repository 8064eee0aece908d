"""Signals for operations: a run started, finished, or failed.

Every receiver gets keyword arguments (always accept ``**kwargs``: more may be added):

``run_started``
    ``alias``, ``trigger`` (``startup``, ``command`` or ``rollback``), ``planned`` (the labels
    the run will apply, or reverse for ``rollback``, in order) and ``run_id`` (its history row's
    id, or ``None`` when history is off or its table did not exist yet). Sent once the lock is
    held and there is work to do.
``run_finished``
    ``alias``, ``trigger``, ``run_id`` and ``result`` (a
    :class:`~django_automigrate.run.runner.DatabaseResult`, ``status == "succeeded"``). Sent when a
    started run ended well.
``run_failed``
    ``alias``, ``trigger``, ``run_id``, ``result`` and ``error`` (one line, as logged). Sent once
    for a run that failed, was rolled back, timed out, or could not start because the database
    is missing or needs a person; ``run_started`` may not have been sent.

``sender`` is :class:`~django_automigrate.models.MigrationRun`. Receivers run in the migrating
process, after the history row is written and the lock released for ``run_finished`` and
``run_failed``, before the first migration for ``run_started``. An exception in a receiver is
logged and never stops or changes the run.
"""

from __future__ import annotations

from django.dispatch import Signal

run_started = Signal()
run_finished = Signal()
run_failed = Signal()

"""Runs whose process ended mid-run: found by the next lock holder and closed truthfully.

Only a process that holds the lock calls :func:`close_interrupted`: the lock ends with its
holder's session (or, for a lease, its holder stops before the lease expires), so a row still
``running`` while we hold the lock belongs to a process that has stopped.

The row names the migration that was in flight. Whether that one may be half-applied follows
from the database: recorded in ``django_migrations`` means it finished; not recorded and run in a
transaction (transactional DDL and ``atomic``) means its transaction undid it; otherwise part of
it may have run and nobody can tell which part, so the database is refused until a person looks.
"""

from __future__ import annotations

import logging

from django.db import Error
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.migrations.loader import MigrationLoader
from django.utils import timezone

from django_automigrate.models import MigrationRun, Status
from django_automigrate.run.history import UNAPPLYING, history_alias, history_table_exists
from django_automigrate.run.transactions import transactional

logger = logging.getLogger("django_automigrate")


def close_interrupted(connection: BaseDatabaseWrapper) -> list[MigrationRun]:
    """Close every ``running`` row of ``connection``'s database as ``interrupted``; return them.

    Call only while holding the migration lock. Never raises for a database problem: a history
    that cannot be read or written is logged, and the run goes on without it.
    """
    alias = connection.alias
    using = history_alias(alias)
    try:
        if not history_table_exists(using):
            return []
        rows = list(MigrationRun.objects.using(using).filter(database=alias, status=Status.RUNNING))
        if not rows:
            return []
        loader = MigrationLoader(connection)
        for row in rows:
            _close(row, loader, connection, using)
    except Error as exc:
        logger.error("automigrate: %s: could not close interrupted runs: %s", alias, exc)
        return []
    return rows


def _close(
    row: MigrationRun, loader: MigrationLoader, connection: BaseDatabaseWrapper, using: str
) -> None:
    backwards = row.in_flight.startswith(UNAPPLYING)
    label = row.in_flight.removeprefix(UNAPPLYING)
    recorded = tuple(label.split(".", 1)) in loader.applied_migrations if label else False
    # Forwards, the record is written last: recorded means done. Backwards, the record is
    # removed last: not recorded means done.
    finished = recorded != backwards if label else True
    half = bool(label) and not finished and not _transactional(label, loader, connection)
    verb = "unapplying" if backwards else "applying"
    if half:
        summary = (
            f"interrupted while {verb} {label}: its process ended (killed, or its connection "
            f"was lost) inside it, outside a transaction, so {label} may be half-applied"
        )
    elif label and not finished:
        summary = (
            f"interrupted while {verb} {label}: its process ended (killed, or its connection "
            "was lost); the migration's transaction undid it"
        )
    else:
        summary = (
            "interrupted: its process ended (killed, or its connection was lost) before the "
            "run finished; no migration was left half-done"
        )
    applied = list(row.applied)
    if label and finished and not backwards and label not in applied:
        applied.append(label)  # it finished just before the process ended
    row.status = Status.INTERRUPTED
    row.finished_at = timezone.now()
    row.duration = row.finished_at - row.started_at
    row.applied = applied
    row.half_applied = half
    row.failed_migration = label if half else row.failed_migration
    row.error_summary = summary
    row.in_flight = ""
    row.save(
        using=using,
        update_fields=[
            "status",
            "finished_at",
            "duration",
            "applied",
            "half_applied",
            "failed_migration",
            "error_summary",
            "in_flight",
        ],
    )
    logger.warning(
        "automigrate: %s: run #%s was %s (it had applied: %s)",
        connection.alias,
        row.pk,
        summary,
        ", ".join(applied) or "nothing",
        extra={"database": connection.alias, "run_id": row.pk, "migration": label},
    )


def _transactional(label: str, loader: MigrationLoader, connection: BaseDatabaseWrapper) -> bool:
    """Whether ``label`` ran, its record included, in one transaction (the applier opens one
    around each atomic migration where DDL is transactional), so that a kill undid it whole.

    Nothing else counts: on MySQL even a lone ``RunPython`` commits its transaction before
    Django records it. A migration this code does not have (a newer release ran it) cannot be
    judged: not transactional.
    """
    migration = loader.graph.nodes.get(tuple(label.split(".", 1)))
    return migration is not None and transactional(connection, migration)


def refusal_message(alias: str, run: MigrationRun) -> str:
    """What to tell the operator of a database that ``run`` left half-applied."""
    label = run.failed_migration or "a migration"
    app, _, name = label.partition(".")
    if run.status == Status.INTERRUPTED:
        what = (
            f"run #{run.pk} was interrupted inside {label}, which ran outside a transaction "
            "and may be half-applied"
        )
    else:
        what = f"run #{run.pk} left {label} half-applied"
    return (
        f"Refusing to migrate {alias!r}: {what}, and nobody has recorded fixing it. Compare "
        f"the database with 'manage.py sqlmigrate {app} {name}', then undo its partial changes "
        f"(the next run applies it again) or complete them and record it with 'manage.py "
        f"migrate --fake {app} {name}'; then run 'manage.py automigrate --mark-fixed {run.pk}'."
    )

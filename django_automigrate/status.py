"""Is each database up to date? The question a health check asks every second, answered cheaply.

What is on disk does not change while a process lives; what is in the database does (another
replica may migrate it at any moment). So the plan, which needs Django's migration loader (every
migration module imported and the graph built), is cached per database alias and recomputed only
when ``django_migrations`` changed: a call costs one aggregate query on that table while it has
not. The fingerprint is (row count, highest id, latest ``applied`` time): applying adds a row
with a higher id and a newer time, unapplying removes one, so any change moves at least one.

The history is read only when something is pending: then it says *why* (a run in progress, a
failed run, a half-applied migration); when nothing is pending the database is up to date for
this process's code, whatever its history says.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any

from django.db import Error, connections, transaction
from django.db.migrations.recorder import MigrationRecorder
from django.db.models import Count, Max
from django.utils import timezone

from django_automigrate import startup
from django_automigrate.conf import get_settings
from django_automigrate.exceptions import AutomigrateError, PlanError
from django_automigrate.locks import lock_for
from django_automigrate.models import MigrationRun, Status
from django_automigrate.reporting import metrics
from django_automigrate.run.history import history_alias, unresolved_half_applied
from django_automigrate.run.plan import migration_label, nothing_pending, pending_work
from django_automigrate.run.results import FAILED_STATUSES

logger = logging.getLogger("django_automigrate")

Fingerprint = tuple[Any, ...] | None


@dataclasses.dataclass(frozen=True)
class DatabaseStatus:
    """The migration state of one database, as this process's code sees it."""

    alias: str
    healthy: bool
    #: One line, safe to show anyone: no SQL, no traceback, no credentials.
    reason: str = ""
    #: Migrations on disk not applied to this database, in the order a run applies them.
    pending: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class _CachedPlan:
    fingerprint: Fingerprint
    pending: tuple[str, ...]


_cache: dict[str, _CachedPlan] = {}
_cache_lock = threading.Lock()
_logged_errors: set[tuple[str, str, str]] = set()


def clear_cache() -> None:
    """Forget every cached plan (tests; a process whose migration files changed on disk)."""
    with _cache_lock:
        _cache.clear()


def database_statuses(aliases: Sequence[str] | None = None) -> list[DatabaseStatus]:
    """The state of ``aliases`` (default: the databases automigrate migrates), in order."""
    try:
        names = tuple(aliases) if aliases else get_settings().aliases()
    except AutomigrateError:
        return [DatabaseStatus("*", False, "invalid AUTOMIGRATE settings: see 'manage.py check'")]
    return [database_status(alias) for alias in names]


def database_status(alias: str) -> DatabaseStatus:
    """The state of one database; never raises for a database problem (it is the answer)."""
    if alias not in connections.settings:
        return DatabaseStatus(alias, False, f"unknown database alias {alias!r}")
    try:
        with _closing_new_connections(alias, history_alias(alias)):
            pending = _pending(alias)
            metrics.set_pending(alias, len(pending))
            if not pending:
                return DatabaseStatus(alias, True, _deferred(alias))
            return DatabaseStatus(alias, False, _why_pending(alias, pending), pending)
    except PlanError as exc:
        return DatabaseStatus(alias, False, f"cannot plan migrations on {alias}: {exc.kind}")
    except Error as exc:
        # The driver's message can name hosts, users or SQL: the class name says enough here;
        # the full error is what the logs and the command are for.
        return DatabaseStatus(
            alias, False, f"cannot read the migration state of {alias} ({type(exc).__name__})"
        )
    except Exception as exc:
        # A migration module that does not import, a dependency that does not exist: the
        # project's code is broken. Logged in full once per process and error (a probe asks
        # every second); the caller sees what kind of problem.
        key = (alias, type(exc).__name__, str(exc))
        if key not in _logged_errors:
            _logged_errors.add(key)
            logger.exception("automigrate: cannot compute the migration state of %s", alias)
        return DatabaseStatus(
            alias, False, f"cannot plan migrations on {alias} ({type(exc).__name__})"
        )


def _deferred(alias: str) -> str:
    """Healthy, and deferred work waits: normal during a rolling deploy, said in the reason."""
    from django_automigrate.run.deferral import pending, waited_since

    rows = pending(alias)
    oldest = max((waited_since(row).total_seconds() for row in rows), default=0.0)
    metrics.set_deferred(alias, len(rows), oldest)
    if not rows:
        return ""
    return (
        f"{len(rows)} deferred operation(s) on {alias} wait for older code to go "
        f"(since {_clock(min(row.deferred_at for row in rows))})"
    )


@contextmanager
def _closing_new_connections(*aliases: str) -> Iterator[None]:
    """Close the connections this call opened: a health check runs in a pool thread that no
    request cycle cleans up after, and each thread has its own connections."""
    opened = {alias for alias in aliases if connections[alias].connection is None}
    try:
        yield
    finally:
        for alias in opened:
            connections[alias].close()


def _tolerating_errors(alias: str) -> Any:
    """A savepoint when called inside a transaction (a view under ATOMIC_REQUESTS, say): a
    query that fails here (a table not created yet) must not break the caller's transaction."""
    connection = connections[alias]
    return transaction.atomic(using=alias) if connection.in_atomic_block else nullcontext()


def _fingerprint(alias: str) -> Fingerprint:
    recorder = MigrationRecorder(connections[alias])
    try:
        with _tolerating_errors(alias):
            row = recorder.migration_qs.aggregate(
                rows=Count("id"), last=Max("id"), at=Max("applied")
            )
    except Error:
        if recorder.has_table():
            raise
        return None  # no django_migrations table: nothing is applied yet
    return (row["rows"], row["last"], row["at"])


def _pending(alias: str) -> tuple[str, ...]:
    fingerprint = _fingerprint(alias)
    cached = _cache.get(alias)
    if cached is not None and cached.fingerprint == fingerprint:
        return cached.pending
    pending: tuple[str, ...] = ()
    if not nothing_pending(connections[alias]):
        plan = pending_work(connections[alias]).plan
        pending = tuple(migration_label(migration) for migration, _ in plan)
    with _cache_lock:
        _cache[alias] = _CachedPlan(fingerprint, pending)
    return pending


def _why_pending(alias: str, pending: tuple[str, ...]) -> str:
    count = f"{len(pending)} migration{'s' if len(pending) != 1 else ''} pending"
    newest, stuck = _history(alias)
    if stuck is not None:
        what = (
            f"was interrupted inside {stuck.failed_migration}, which may be half-applied"
            if stuck.status == Status.INTERRUPTED
            else f"left {stuck.failed_migration} half-applied"
        )
        return (
            f"run #{stuck.pk} {what} on {alias}: repair it, "
            f"then run 'manage.py automigrate --mark-fixed {stuck.pk}'"
        )
    if newest is not None and newest.status == Status.RUNNING:
        if _lock_is_free(alias, newest.lock):
            # Its process died mid-run (killed, or its connection lost); the next run will
            # close it as interrupted. Saying "in progress" until then would mislead whoever
            # waits.
            return (
                f"run #{newest.pk} on {alias} stopped before it finished (host "
                f"{newest.host or 'unknown'}, started {_clock(newest.started_at)}): the next run "
                f"closes it as interrupted and takes over; {count}"
            )
        return (
            f"migration in progress on {alias} since {_clock(newest.started_at)} "
            f"(run #{newest.pk}, host {newest.host or 'unknown'}); {count}"
        )
    own = startup.state()
    if own.status == startup.IN_PROGRESS:
        since = f" since {_clock(own.started_at)}" if own.started_at else ""
        return f"migration in progress on {alias}{since} (this process's startup run); {count}"
    if newest is not None and newest.status in (*FAILED_STATUSES, Status.INTERRUPTED):
        return f"last run #{newest.pk} on {alias} {_failed_how(newest)}; {count}"
    return f"{count} on {alias}"


def _lock_is_free(alias: str, lock_name: str) -> bool:
    """True only when the lock the run recorded is today's lock and nobody holds it. Unknown
    (locking off, another kind of lock, the server cannot tell) is not free: a run may be on."""
    try:
        conf = get_settings()
        if not conf.use_lock:
            return False
        lock = lock_for(connections[alias], conf, use_lock=True)
        try:
            return lock.name == lock_name and lock.holder() is None
        finally:
            lock.release()  # took nothing; closes the connection it used to ask
    except Exception:
        return False


def _history(alias: str) -> tuple[MigrationRun | None, MigrationRun | None]:
    """The newest run of ``alias`` and the latest unresolved half-applied one (or None)."""
    using = history_alias(alias)
    try:
        with _tolerating_errors(using):
            newest = (
                MigrationRun.objects.using(using)
                .filter(database=alias)
                .only("id", "status", "started_at", "host", "lock", "lock_waits")
                .first()
            )
    except Error:
        # No history table, or one older than this code (its own migrations are pending and
        # the count says so): there is no history to explain the pending migrations.
        return None, None
    with _tolerating_errors(using):  # the runner's own question, which tolerates both cases
        stuck = unresolved_half_applied(alias)
    return newest, stuck


def _failed_how(run: MigrationRun) -> str:
    if run.status == Status.ROLLED_BACK:
        return "failed and was rolled back"
    if run.status == Status.TIMED_OUT:
        waits = run.lock_waits or []
        blockers = waits[-1].get("blockers", []) if waits else []
        exact = [b for b in blockers if not b.get("candidate")]
        held = ", ".join(
            f"session {b.get('id')} ({b.get('state') or 'unknown state'})" for b in exact[:3]
        )
        return "timed out waiting for a table lock" + (f" held by {held}" if held else "")
    if run.status == Status.INTERRUPTED:
        return "was interrupted (its process ended mid-run)"
    return "failed"


def _clock(moment: datetime.datetime | None) -> str:
    if moment is None:
        return "an unknown time"
    if timezone.is_aware(moment):
        moment = timezone.localtime(moment)
    today = timezone.localdate() if timezone.is_aware(moment) else datetime.date.today()
    fmt = "%H:%M:%S %Z" if moment.date() == today else "%Y-%m-%d %H:%M:%S %Z"
    return moment.strftime(fmt).strip()

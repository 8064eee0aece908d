"""What is pending on a database, computed the way ``migrate`` computes it, without writing."""

from __future__ import annotations

import dataclasses
import logging

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.migrations.migration import Migration

from django_automigrate.exceptions import PlanError
from django_automigrate.run import uptodate

logger = logging.getLogger("django_automigrate")

Plan = list[tuple[Migration, bool]]

#: The app whose migrations hold the run history: a run applies them first, in a step of
#: their own, and rollbacks never undo them.
HISTORY_APP = "django_automigrate"


def migration_label(migration: Migration) -> str:
    """``app_label.migration_name``, the form used in output, logs and history."""
    return f"{migration.app_label}.{migration.name}"


def run_order(plan: Plan, *, history: bool) -> Plan:
    """``plan`` in the order a run applies it: with ``history`` on, the history's own migrations
    first, in a step of their own (so that the run is recorded from its start). Nothing depends
    on them, so this order is as valid as Django's."""
    if not history:
        return list(plan)
    return sorted(plan, key=lambda step: step[0].app_label != HISTORY_APP)


@dataclasses.dataclass(frozen=True)
class Pending:
    """What a run has to do on one database."""

    plan: Plan
    #: Squashed migrations whose replaced migrations are all applied but which are not recorded
    #: themselves yet. ``migrate`` records them on every run; until it does, removing the
    #: replaced migrations from disk would make Django apply the squash again.
    unrecorded_squashes: list[str]
    #: Migrations recorded as applied whose file is gone (and that no squash replaces): applied
    #: from another branch in development, or by a newer release still rolling out.
    applied_without_file: list[str] = dataclasses.field(default_factory=list)
    #: The latest migration on disk of each app with such a migration (for the undo hint).
    disk_leaves: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.plan and not self.unrecorded_squashes


def fast_answer(
    connection: BaseDatabaseWrapper, watch: uptodate.Watch | None = None
) -> uptodate.Answer:
    """What the migration files and ``django_migrations`` prove, without Django's plan
    (:mod:`~django_automigrate.run.uptodate`: no migration module imported); logs at DEBUG why
    it is not sure, when it is not."""
    answer = watch.answer(connection) if watch is not None else uptodate.check(connection)
    if not answer.up_to_date:
        logger.debug(
            "automigrate: %s: reading Django's full plan (%s)",
            connection.alias,
            answer.reason,
            extra={"database": connection.alias},
        )
    return answer


def nothing_pending(connection: BaseDatabaseWrapper) -> bool:
    """True when nothing is pending for sure; False means "not sure": ask :func:`pending_work`."""
    return fast_answer(connection).up_to_date


def load_migration_files() -> None:
    """Import every migration module, without a connection: a plan made right after holds its
    connection for milliseconds instead of for the imports (hundreds of replicas planning at
    once must not use up the server's connections)."""
    from django.db.migrations.loader import MigrationLoader

    MigrationLoader(None, ignore_no_migrations=True, load=False).load_disk()


def pending_plan(connection: BaseDatabaseWrapper) -> Plan:
    """The forwards plan to the latest migrations on disk, as ``manage.py migrate`` would run it.

    Reads ``django_migrations`` (a missing table means nothing is applied) and never creates it.
    Raises :class:`PlanError` for the states ``migrate`` itself refuses.
    """
    return pending_work(connection).plan


def pending_work(connection: BaseDatabaseWrapper) -> Pending:
    """The plan, and the squash bookkeeping ``migrate`` would do (see :class:`Pending`)."""
    # Imported when the fast answer is not enough: a start with nothing to do never needs them.
    from django.db.migrations.exceptions import InconsistentMigrationHistory
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    loader = executor.loader
    try:
        loader.check_consistent_history(connection)
    except InconsistentMigrationHistory as exc:
        raise PlanError(
            f"Inconsistent migration history on database {connection.alias!r}: {exc}",
            kind="inconsistent migration history",
        ) from exc
    conflicts = loader.detect_conflicts()
    if conflicts:
        names = "; ".join(
            f"{', '.join(sorted(names))} in {app}" for app, names in conflicts.items()
        )
        raise PlanError(
            f"Conflicting migrations on database {connection.alias!r} ({names}). "
            "Run 'manage.py makemigrations --merge' and deploy the merge migration.",
            kind="conflicting migrations",
        )
    plan = executor.migration_plan(loader.graph.leaf_nodes())
    # The condition of MigrationExecutor.check_replacements(), read without writing.
    recorded = executor.recorder.applied_migrations() if executor.recorder.has_table() else {}
    unrecorded = [
        f"{app_label}.{name}"
        for (app_label, name), migration in loader.replacements.items()
        if (app_label, name) not in recorded
        and all(tuple(replaced) in recorded for replaced in migration.replaces)
    ]
    replaced = {tuple(key) for m in loader.disk_migrations.values() for key in m.replaces}
    without_file = sorted(
        key
        for key in recorded
        if key[0] in loader.migrated_apps
        and key not in loader.disk_migrations
        and key not in replaced
    )
    gone_apps = {app for app, _ in without_file}
    leaves = {app: name for app, name in loader.graph.leaf_nodes() if app in gone_apps}
    return Pending(
        plan,
        sorted(unrecorded),
        applied_without_file=[f"{app}.{name}" for app, name in without_file],
        disk_leaves=leaves,
    )


def applied_without_file_warning(alias: str, pending: Pending) -> str:
    """One line naming the applied migrations that have no file, and how to undo them."""
    labels = pending.applied_without_file
    undo = " or ".join(
        f"'manage.py migrate {app} {name}'" for app, name in sorted(pending.disk_leaves.items())
    )
    apps_ = " ".join(sorted(pending.disk_leaves))
    return (
        f"automigrate: {alias}: {len(labels)} applied migration(s) have no file here: "
        f"{', '.join(labels)} (applied from another branch, or by a newer release?). To undo, "
        f"on the code that has them run {undo or 'manage.py migrate APP NAME'} (or "
        f"'manage.py automigrate --rollback RUN'); if they are gone for good, "
        f"'manage.py migrate --prune {apps_}' forgets them."
    )


def full_plan_labels() -> list[str]:
    """Every migration a run would apply to an empty database, in order (no connection used)."""
    from django.db.migrations.loader import MigrationLoader

    graph = MigrationLoader(None, ignore_no_migrations=True).graph
    labels: dict[str, None] = {}
    for leaf in sorted(graph.leaf_nodes()):
        for app_label, name in graph.forwards_plan(leaf):
            labels[f"{app_label}.{name}"] = None
    return list(labels)

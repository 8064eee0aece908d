"""The contract step: the deferred database work of earlier runs, once no older code serves.

A run of its own (trigger ``contract``) through the one run session: under the migration lock,
recorded, reported. Each deferred operation runs in its own step, checked against the lock
first and against the database (a drop already done, by a step killed before it was marked,
is only marked), and marked done in the same transaction where the DDL is transactional.

The work is rebuilt from the migration file and the project state as the applied migrations
leave it now, plus what is still in the database: on SQLite a column is dropped by copying the
table, and the copy must keep every column that later migrations added.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import traceback
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.state import ProjectState
from django.utils import timezone

from django_automigrate.conf import AutomigrateSettings
from django_automigrate.db_errors import is_lock_timeout
from django_automigrate.fleet import registry
from django_automigrate.models import DeferredOperation, FleetMember, Status, Trigger
from django_automigrate.run import deferral
from django_automigrate.run.history import HistoryRecorder, history_alias
from django_automigrate.run.results import DatabaseResult, Outcome, describe_error
from django_automigrate.run.session import DatabaseRun, Work
from django_automigrate.run.sqlplan import applied_state

logger = logging.getLogger("django_automigrate")


@dataclasses.dataclass(frozen=True)
class Waiting:
    """One deferred operation, and what it waits for."""

    row: DeferredOperation
    #: Processes seen within the grace period whose code lacks its migration.
    older: list[FleetMember]
    #: When it may run (None: it may now).
    not_before: datetime.datetime | None

    @property
    def ready(self) -> bool:
        return self.not_before is None

    def label(self) -> str:
        return f"{self.row.migration} #{self.row.operation_index} ({self.row.description})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "migration": self.row.migration,
            "operation": self.row.operation_index,
            "description": self.row.description,
            "kind": self.row.kind,
            "deferred_at": self.row.deferred_at.isoformat(),
            "deferred_by": self.row.deferred_by_id,
            "waiting_for": [registry.as_dict(m, float("inf")) for m in self.older],
            "not_before": self.not_before.isoformat() if self.not_before else None,
        }


def waiting(alias: str, conf: AutomigrateSettings) -> list[Waiting]:
    """The deferred work of ``alias``, each with what it waits for: it may run once no process
    whose code lacks its migration has been seen for the grace period since it was deferred."""
    rows = deferral.pending(alias)
    if not rows:
        return []
    using = history_alias(alias)
    found = registry.members(using) if registry.table_exists(using) else []
    grace = datetime.timedelta(seconds=conf.effective_contract_grace)
    now = timezone.now()
    result = []
    for row in rows:
        older = registry.lacking(row.migration, found)
        last = max([row.deferred_at, *(m.last_seen for m in older)])
        recent = [m for m in older if now - m.last_seen < grace]
        result.append(Waiting(row, recent, None if now - last >= grace else last + grace))
    return result


class ContractDeferred(Work):
    """Run the deferred work that may run (all of it with ``force``: ``--contract``)."""

    trigger = str(Trigger.CONTRACT)
    lists_own_migrations = False

    def __init__(self, conf: AutomigrateSettings, *, force: bool, background: bool = False) -> None:
        self.conf = conf
        self.force = force
        self.yields_to_holder = background
        self.rows: list[DeferredOperation] = []

    def plan(self, connection: BaseDatabaseWrapper, *, before_lock: bool) -> list[str] | None:
        found = waiting(connection.alias, self.conf)
        chosen = [w for w in found if w.ready or self.force]
        if not chosen:
            return None
        self.rows = [w.row for w in chosen]
        return [w.label() for w in chosen]

    def done_elsewhere(self, connection: BaseDatabaseWrapper) -> bool:
        return not deferral.pending(connection.alias)

    def carry_out(self, session: DatabaseRun, recorder: HistoryRecorder) -> DatabaseResult:
        connection = session.connection
        done: list[dict[str, object]] = []
        error: BaseException | None = None
        failed = ""
        run_id = recorder.row.pk if recorder.row is not None else None
        with session.lock.guard(), _budget(connection, self.conf):
            loader = MigrationLoader(connection)
            # Contract work changes no django_migrations row: one loader and one state serve all.
            now = applied_state(loader)
            residues = deferral.Residues(connection.alias)
            for row in self.rows:
                label = f"{row.migration} #{row.operation_index}"
                try:
                    session.lock.verify()
                    recorder.in_flight(label)
                    outcome = _contract_one(connection, loader, now, residues, row, run_id)
                except Exception as exc:
                    error, failed = exc, label
                    break
                done.append({"migration": row.migration, "operation": row.operation_index,
                             "description": row.description, "kind": row.kind,
                             "outcome": outcome})  # fmt: skip
        session._after_connection_loss(error)
        recorder.deferred = done
        applied = [f"{d['migration']} #{d['operation']}" for d in done]
        if error is None:
            run_id = recorder.finish(status=Status.SUCCEEDED, applied=applied)
            return session.result(
                Outcome.SUCCEEDED, planned=recorder.fields["planned"], applied=applied,
                run_id=run_id,
            )  # fmt: skip
        status = Status.TIMED_OUT if is_lock_timeout(error) else Status.FAILED
        message = (
            f"{describe_error(session.alias, error).rstrip('.')}. The deferred work stays "
            "queued; the next contract step tries again."
        )
        trace = "".join(traceback.format_exception(error))
        run_id = recorder.finish(
            status=status, applied=applied, failed_migration=failed, error_summary=message,
            traceback=trace,
        )  # fmt: skip
        return session.result(
            status, planned=recorder.fields["planned"], applied=applied, run_id=run_id,
            failed_migration=failed, error=message, traceback=trace,
        )  # fmt: skip


def _budget(connection: BaseDatabaseWrapper, conf: AutomigrateSettings) -> Any:
    from django_automigrate.run.timeouts import statement_lock_timeout

    return statement_lock_timeout(
        connection, conf.statement_lock_timeout, pooled=conf.lock_backend == "table"
    )


def _contract_one(
    connection: BaseDatabaseWrapper,
    loader: MigrationLoader,
    now: ProjectState,
    residues: deferral.Residues,
    row: DeferredOperation,
    run_id: int | None,
) -> str:
    """Do one deferred operation; what happened: ``done``, ``already_done`` or ``dropped``
    (its migration is no longer applied: nothing to do, the row goes)."""
    queue = DeferredOperation.objects.using(history_alias(connection.alias))
    key = tuple(row.migration.split(".", 1))
    migration = loader.graph.nodes.get(key)
    if key not in loader.applied_migrations:
        # Unapplied since (a rollback on a backend without transactional DDL): nothing waits.
        queue.filter(pk=row.pk).delete()
        return "dropped"
    if migration is None or row.operation_index >= len(migration.operations):
        raise RuntimeError(
            f"{row.migration} is no longer on disk as it was deferred, so its operation "
            f"#{row.operation_index} ({row.description}) cannot be run: run it by hand, then "
            "delete its row in the admin's deferred operations."
        )
    operation = migration.operations[row.operation_index]
    app = migration.app_label
    before = loader.project_state(key, at_end=False)
    for earlier in migration.operations[: row.operation_index]:
        earlier.state_forwards(app, before)
    transactional = bool(migration.atomic and connection.features.can_rollback_ddl)
    with connection.schema_editor(atomic=transactional) as editor:
        if _already_done(connection, operation, app, before):
            outcome = "already_done"
        else:
            _run(
                editor, operation, app, before, now, residues, (row.migration, row.operation_index)
            )
            outcome = "done"
        queue.filter(pk=row.pk).update(contracted_at=timezone.now(), contracted_by_id=run_id)
    return outcome


def _already_done(
    connection: BaseDatabaseWrapper, operation: Any, app: str, before: ProjectState
) -> bool:
    """A drop whose object is gone already: a step killed after its DDL, before its mark."""
    from django.db import migrations

    with connection.cursor() as cursor:
        tables = connection.introspection.table_names(cursor)
        if isinstance(operation, migrations.DeleteModel):
            model: Any = before.apps.get_model(app, operation.name)
            return model._meta.db_table not in tables
        if isinstance(operation, migrations.RemoveField):
            model = before.apps.get_model(app, operation.model_name)
            field = model._meta.get_field(operation.name)
            if field.many_to_many:
                return field.remote_field.through._meta.db_table not in tables
            if model._meta.db_table not in tables:
                return True
            columns = connection.introspection.get_table_description(cursor, model._meta.db_table)
            return field.column not in {c.name for c in columns}
    return False


def _run(
    editor: Any,
    operation: Any,
    app: str,
    before: ProjectState,
    now: ProjectState,
    residues: deferral.Residues,
    key: deferral.Key,
) -> None:
    """Take the database from the schema with this operation's residue to the one without it,
    both with the residue of every other deferred operation still queued."""
    mine = residues.of(*key)
    if mine is None:  # marked work: the operation itself, as its migration has it
        after = before.clone()
        operation.state_forwards(app, after)
        operation.database_forwards(app, editor, before, after)
        return
    others = residues.queued(but=key)
    with_it = deferral.with_residues(now, [*others, mine])
    without = deferral.with_residues(now, others)
    model: Any = with_it.apps.get_model(app, mine.model)
    if mine.kind == "table":
        editor.delete_model(model)
    elif mine.kind == "column":
        editor.remove_field(model, model._meta.get_field(mine.name))
    else:
        target: Any = without.apps.get_model(app, mine.model)
        editor.alter_field(
            model, model._meta.get_field(mine.name), target._meta.get_field(mine.name), strict=True
        )

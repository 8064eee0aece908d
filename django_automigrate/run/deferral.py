"""Expand now, contract later: which operations of a plan wait for the older code to go, and
how a migration is applied with their database work held back.

:func:`judge` classifies every operation of the plan (:mod:`.compat`) against the fleet
(:mod:`django_automigrate.fleet.registry`): an incompatible operation is deferred only while
a process whose code lacks its migration is alive. :class:`Rewriter` then wraps each deferred
operation of a migration, at the moment it starts: Django's state changes as the migration
says, the database gets only the part the new code needs now, and a
:class:`~django_automigrate.models.DeferredOperation` row in the same transaction queues the
rest. Every other operation on a model with deferred work runs against the schema the
database really has (:class:`Residue`).
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterable
from typing import Any

from django.db import Error, migrations
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.migration import Migration
from django.db.migrations.operations.base import Operation
from django.db.migrations.state import ProjectState
from django.utils import timezone

from django_automigrate.fleet import registry
from django_automigrate.models import DeferredOperation, FleetMember
from django_automigrate.run import compat
from django_automigrate.run.history import history_alias
from django_automigrate.run.plan import Plan, migration_label

#: Where a plan's judgement names the operation: ``app.migration#index``.
Key = tuple[str, int]


@dataclasses.dataclass(frozen=True)
class Judged:
    migration: str
    index: int
    description: str
    verdict: compat.Verdict

    def to_dict(self) -> dict[str, Any]:
        return {
            "migration": self.migration,
            "operation": self.index,
            "description": self.description,
            "kind": self.verdict.kind,
            "reason": self.verdict.reason,
        }


@dataclasses.dataclass
class Judgement:
    """What a plan defers and refuses, and the processes it waits for."""

    deferred: list[Judged] = dataclasses.field(default_factory=list)
    refused: list[Judged] = dataclasses.field(default_factory=list)
    #: Later operations that touch what is deferred (they would run against the old schema).
    conflicts: list[str] = dataclasses.field(default_factory=list)
    #: Live processes running code older than the plan.
    waiting_for: list[FleetMember] = dataclasses.field(default_factory=list)

    def verdicts(self, label: str) -> dict[int, compat.Verdict]:
        return {j.index: j.verdict for j in self.deferred if j.migration == label}

    def refusal(self, alias: str) -> str | None:
        """Why the plan may not run beside the older code, with the way through; None if it may."""
        if not self.refused and not self.conflicts:
            return None
        what = [f"{j.migration} {j.verdict.reason}" for j in self.refused] + self.conflicts
        return (
            f"nothing was applied to {alias!r}: {'; '.join(what)}, while {self.serving()} "
            "serves. Deploy it once the older code is gone, or split it into an expand and a "
            "later contract migration; to apply it now anyway: 'manage.py automigrate "
            "--no-defer', or AUTOMIGRATE_DEFER_INCOMPATIBLE=false for this deploy."
        )

    def serving(self) -> str:
        """The older code serving, for people: "release 41 (3 processes)"."""
        return describe_members(self.waiting_for) or "older code"


def describe_members(found: Iterable[FleetMember]) -> str:
    groups: dict[str, int] = {}
    for member in found:
        name = f"release {member.release}" if member.release else f"graph {member.graph}"
        groups[name] = groups.get(name, 0) + 1
    return ", ".join(
        f"{name} ({count} process{'es' if count != 1 else ''})" for name, count in groups.items()
    )


def live_members(using: str, expiry: float) -> list[FleetMember]:
    """The processes alive now. A fleet nobody registered in (processes of a release older than
    the fleet itself) shows none: those cannot be seen."""
    if not registry.table_exists(using):
        return []
    now = timezone.now()
    return [m for m in registry.members(using) if registry.is_live(m, now, expiry)]


def judge(
    connection: BaseDatabaseWrapper, plan: Plan, *, expiry: float, start: ProjectState
) -> Judgement:
    """Classify every forward operation of ``plan``, from the state ``start`` (the applied
    migrations'), against the fleet seen now."""
    judgement = Judgement()
    using = history_alias(connection.alias)
    state = start.clone()
    created: set[str] = set()
    touched = _pending_keys(connection)
    live: list[FleetMember] | None = None  # read once, when an operation first needs it
    for migration, backwards in plan:
        if backwards:
            continue
        label = migration_label(migration)
        for index, operation in enumerate(migration.operations):
            verdict = compat.classify(operation, migration, state, created=created)
            keys = _keys(operation, migration.app_label)
            if isinstance(operation, migrations.CreateModel):
                created.add(f"{migration.app_label}.{operation.name_lower}")
            operation.state_forwards(migration.app_label, state)
            if verdict.answer == compat.COMPATIBLE:
                clash = next((k for k in keys if k in touched or k[:2] in touched), None)
                if clash is not None:
                    judgement.conflicts.append(
                        f"{label} ({operation.describe()}) changes {'.'.join(clash[:3])}, "
                        f"whose deferred work ({touched.get(clash) or touched[clash[:2]]}) has "
                        "not run yet"
                    )
                continue
            if live is None:
                live = live_members(using, expiry)
            older = registry.lacking(label, live)
            if not older:
                continue  # no older code serves: it runs now, as migrate would
            judgement.waiting_for.extend(m for m in older if m not in judgement.waiting_for)
            judged = Judged(label, index, operation.describe(), verdict)
            if verdict.deferred:
                judgement.deferred.append(judged)
                for key in keys:
                    touched[key] = label
            else:
                judgement.refused.append(judged)
    return judgement


_Touched = tuple[str, ...]


def _keys(operation: Operation, app: str) -> list[_Touched]:
    """What ``operation`` changes: ``(app, model)`` and ``(app, model, field)``."""
    model = getattr(operation, "model_name", None)
    if isinstance(model, str):
        field = getattr(operation, "name", None) or getattr(operation, "old_name", "")
        keys: list[_Touched] = [(app, model.lower(), str(field))]
        if new := getattr(operation, "new_name", None):
            keys.append((app, model.lower(), str(new)))
        return keys
    name = getattr(operation, "name", None) or getattr(operation, "old_name", None)
    return [(app, str(name).lower())] if isinstance(name, str) else []


def _pending_keys(connection: BaseDatabaseWrapper) -> dict[_Touched, str]:
    """What the deferred work of earlier runs will change, still waiting."""
    from django.db.migrations.loader import MigrationLoader

    rows = pending(connection.alias)
    if not rows:
        return {}
    nodes = MigrationLoader(None, ignore_no_migrations=True).graph.nodes
    keys: dict[_Touched, str] = {}
    for row in rows:
        migration = nodes.get(tuple(row.migration.split(".", 1)))
        if migration is not None and row.operation_index < len(migration.operations):
            operation = migration.operations[row.operation_index]
            for key in _keys(operation, migration.app_label):
                keys[key] = row.migration
    return keys


def pending(alias: str) -> list[DeferredOperation]:
    """The deferred work of ``alias`` not done yet, oldest first ([] without the table)."""
    using = history_alias(alias)
    try:
        if not registry.table_exists(using):
            return []
        return list(
            DeferredOperation.objects.using(using).filter(database=alias, contracted_at=None)
        )
    except Error:
        return []


# --- what the database still has: the residue of deferred work ---------------------------------


@dataclasses.dataclass(frozen=True)
class Residue:
    """What one deferred operation leaves in the database until the contract step, beyond what
    Django's state says: a column (``column``), a field as it was (``alter``: its database
    default kept, its old nullability or length), or a whole table (``table``)."""

    kind: str
    app: str
    model: str
    name: str = ""
    field: Any = None
    model_state: Any = None


def residue_of(operation: Operation, migration: Migration, before: ProjectState) -> Residue | None:
    """The residue ``operation`` of ``migration`` leaves while deferred, given the state just
    before it: what the state says once the part that runs now (:mod:`.compat`'s
    ``verdict.now``) is applied, and the operation itself is not."""
    verdict = compat.classify(operation, migration, before, created=set())
    if not verdict.deferred or verdict.kind == "marked":
        return None  # marked work: what it leaves is its author's business
    app = migration.app_label
    expanded = before.clone()
    for step in verdict.now:
        step.state_forwards(app, expanded)
    if isinstance(operation, migrations.DeleteModel):
        model = expanded.models.get((app, operation.name_lower))
        if model is None:
            return None
        return Residue("table", app, operation.name_lower, model_state=model.clone())
    name: str = getattr(operation, "name", "")
    model_name = str(getattr(operation, "model_name_lower", ""))
    found = expanded.models.get((app, model_name))
    if found is None or name not in found.fields:
        return None
    kind = "column" if isinstance(operation, migrations.RemoveField) else "alter"
    return Residue(kind, app, model_name, name, found.fields[name])


def with_residues(state: ProjectState, residues: Iterable[Residue]) -> ProjectState:
    """``state`` as the database has it: a copy, with what deferred work leaves added back."""
    residues = list(residues)
    if not residues:
        return state
    physical = state.clone()
    for residue in residues:
        key = (residue.app, residue.model)
        present = physical.models.get(key)
        if residue.kind == "table":
            if present is None:
                physical.add_model(residue.model_state.clone())
        elif present is None:
            continue  # its model is gone from the state: its table's residue brings it back
        elif residue.kind == "column" and residue.name not in present.fields:
            physical.add_field(residue.app, residue.model, residue.name, residue.field, True)
        elif residue.kind == "alter" and residue.name in present.fields:
            physical.alter_field(residue.app, residue.model, residue.name, residue.field, True)
    return physical


class Residues:
    """The residue of every deferred operation still queued for one database, read afresh each
    time (rows written a moment ago in the run's own transaction count; rows of an attempt
    rolled back do not), each derived once from its migration file."""

    def __init__(self, alias: str) -> None:
        from django.db.migrations.loader import MigrationLoader

        self.alias = alias
        self._loader = MigrationLoader(None, ignore_no_migrations=True)
        self._derived: dict[Key, Residue | None] = {}
        #: What a dry run's deferred operations would have queued (collecting SQL, they write
        #: no rows): the operations after them see the schema the run would leave.
        self.collected: list[Key] = []

    def of(self, label: str, index: int) -> Residue | None:
        key = (label, index)
        if key not in self._derived:
            self._derived[key] = self._derive(label, index)
        return self._derived[key]

    def _derive(self, label: str, index: int) -> Residue | None:
        app, _, name = label.partition(".")
        node = (app, name)
        migration = self._loader.graph.nodes.get(node)
        if migration is None or index >= len(migration.operations):
            return None
        before = self._loader.project_state(node, at_end=False)
        for earlier in migration.operations[:index]:
            earlier.state_forwards(migration.app_label, before)
        return residue_of(migration.operations[index], migration, before)

    def queued(self, *, but: Key | None = None) -> list[Residue]:
        keys = [(row.migration, row.operation_index) for row in pending(self.alias)]
        found = []
        for key in dict.fromkeys([*keys, *self.collected]):
            if key != but:
                residue = self.of(*key)
                if residue is not None:
                    found.append(residue)
        return found


# --- applying a migration with its deferred operations held back --------------------------------


class OnTheDatabase(Operation):
    """An operation of the migration, run against the schema the database really has: with
    the residue of deferred work (on SQLite, altering a table copies it from the model, which
    must then list every column still there). Its state changes are the operation's own."""

    # Collecting SQL (the dry run), the wrappers queue no rows: their SQL is all they do, and
    # the dry run shows (and forecasts) what the run would execute.
    reduces_to_sql = True

    def __init__(self, operation: Operation, residues: Residues) -> None:
        self.operation = operation
        self.residues = residues
        # Read by Migration.apply() and the undo: the wrapped operation's own answers.
        self.atomic = getattr(operation, "atomic", False)  # type: ignore[misc]
        self.reversible = operation.reversible  # type: ignore[misc]
        self.elidable = getattr(operation, "elidable", False)  # type: ignore[misc]

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:  # never written to a file
        return (type(self).__qualname__, [], {})

    def describe(self) -> str:
        return self.operation.describe()

    def state_forwards(self, app_label: str, state: ProjectState) -> None:
        self.operation.state_forwards(app_label, state)

    def database_forwards(
        self,
        app_label: str,
        schema_editor: BaseDatabaseSchemaEditor,
        from_state: Any,
        to_state: Any,
    ) -> None:
        residues = self.residues.queued()
        self.operation.database_forwards(
            app_label,
            schema_editor,
            with_residues(from_state, residues),
            with_residues(to_state, residues),
        )

    def database_backwards(
        self,
        app_label: str,
        schema_editor: BaseDatabaseSchemaEditor,
        from_state: Any,
        to_state: Any,
    ) -> None:
        residues = self.residues.queued()
        self.operation.database_backwards(
            app_label,
            schema_editor,
            with_residues(from_state, residues),
            with_residues(to_state, residues),
        )


class Deferred(OnTheDatabase):
    """A deferred operation: Django's state changes now, the database gets only what the new
    code needs meanwhile (``verdict.now``), and the rest is queued as a
    :class:`~django_automigrate.models.DeferredOperation` row, in the migration's transaction
    (a migration rolled back queues nothing)."""

    reversible = True

    def __init__(
        self,
        operation: Operation,
        residues: Residues,
        *,
        label: str,
        index: int,
        verdict: compat.Verdict,
        run_id: int | None,
    ) -> None:
        super().__init__(operation, residues)
        self.reversible = True  # type: ignore[misc]  # its reversal undoes the part it ran
        self.label, self.index, self.verdict, self.run_id = label, index, verdict, run_id

    def describe(self) -> str:
        return f"{self.operation.describe()} (database work deferred)"

    def database_forwards(
        self,
        app_label: str,
        schema_editor: BaseDatabaseSchemaEditor,
        from_state: Any,
        to_state: Any,
    ) -> None:
        state = with_residues(from_state, self.residues.queued())
        for step in self.verdict.now:
            after = state.clone()
            step.state_forwards(app_label, after)
            step.database_forwards(app_label, schema_editor, state, after)
            state = after
        if schema_editor.collect_sql:
            self.residues.collected.append((self.label, self.index))
            return
        alias = schema_editor.connection.alias
        DeferredOperation.objects.using(history_alias(alias)).update_or_create(
            database=alias,
            migration=self.label,
            operation_index=self.index,
            defaults={
                "description": self.operation.describe()[:255],
                "kind": self.verdict.kind,
                "deferred_by_id": self.run_id,
                "deferred_at": timezone.now(),
                "contracted_at": None,
                "contracted_by": None,
            },
        )

    def database_backwards(
        self,
        app_label: str,
        schema_editor: BaseDatabaseSchemaEditor,
        from_state: Any,
        to_state: Any,
    ) -> None:
        # from_state: after the operation; to_state: before it (Django's order when unapplying).
        alias = schema_editor.connection.alias
        queue = DeferredOperation.objects.using(history_alias(alias)).filter(
            database=alias, migration=self.label, operation_index=self.index
        )
        if not schema_editor.collect_sql:
            queue.delete()  # first: the states below are the database's without this residue
        states = [with_residues(to_state, self.residues.queued())]
        for step in self.verdict.now:
            after = states[-1].clone()
            step.state_forwards(app_label, after)
            states.append(after)
        for number in range(len(self.verdict.now) - 1, -1, -1):
            self.verdict.now[number].database_backwards(
                app_label, schema_editor, states[number + 1], states[number]
            )


class Rewriter:
    """Wraps the operations of each migration about to be applied (or unapplied) so that the
    database work of deferred operations is held back and every other operation on a model
    with deferred work sees the schema the database really has."""

    def __init__(self, alias: str, judgement: Judgement | None, run_id: int | None) -> None:
        self.alias = alias
        self.judgement = judgement
        self.run_id = run_id
        self._residues: Residues | None = None
        self._known: set[tuple[str, str]] | None = None

    def _models(self) -> set[tuple[str, str]]:
        """Models with deferred work, queued before the run or about to be: read once per run
        (an attempt retried after a rollback starts from the same queue)."""
        if self._known is None:
            keys = [(row.migration, row.operation_index) for row in pending(self.alias)]
            if self.judgement is not None:
                keys += [(j.migration, j.index) for j in self.judgement.deferred]
            self._known = set()
            for label, index in keys:
                residue = self.residues().of(label, index)
                if residue is not None:
                    self._known.add((residue.app, residue.model))
        return self._known

    def residues(self) -> Residues:
        if self._residues is None:
            self._residues = Residues(self.alias)
        return self._residues

    def __call__(
        self, migration: Migration, *, verdicts: dict[int, compat.Verdict] | None = None
    ) -> None:
        if verdicts is None:
            verdicts = self.judgement.verdicts(migration_label(migration)) if self.judgement else {}
        models = self._models()
        if not verdicts and not models:
            return
        residues = self.residues()
        label = migration_label(migration)
        operations: list[Operation] = []
        for index, operation in enumerate(migration.operations):
            if index in verdicts:
                operations.append(
                    Deferred(
                        operation,
                        residues,
                        label=label,
                        index=index,
                        verdict=verdicts[index],
                        run_id=self.run_id,
                    )
                )
            elif any(key in models for key in _model_keys(operation, migration.app_label)):
                operations.append(OnTheDatabase(operation, residues))
            else:
                operations.append(operation)
        # The executor's own instance, fresh from its loader: Django's operations are wrapped,
        # not changed.
        migration.operations = operations  # type: ignore[misc]


def _model_keys(operation: Operation, app: str) -> list[tuple[str, str]]:
    return [(key[0], key[1]) for key in _keys(operation, app)]


def rewrite_for_reverse(connection: BaseDatabaseWrapper, migration: Migration) -> None:
    """Before ``migration`` is unapplied: its operations still deferred are reversed as they
    were applied (the expand part only), and their queue rows go with them."""
    label = migration_label(migration)
    rows = pending(connection.alias)
    waiting = {row.operation_index for row in rows if row.migration == label}
    if not rows:
        return
    from django.db.migrations.loader import MigrationLoader

    node = (migration.app_label, migration.name)
    state = MigrationLoader(None, ignore_no_migrations=True).project_state(node, at_end=False)
    verdicts: dict[int, compat.Verdict] = {}
    for index, operation in enumerate(migration.operations):
        if index in waiting:
            found = compat.classify(operation, migration, state, created=set())
            verdicts[index] = found if found.deferred else compat.Verdict(compat.DEFER, "marked")
        operation.state_forwards(migration.app_label, state)
    Rewriter(connection.alias, None, None)(migration, verdicts=verdicts)


def waited_since(row: DeferredOperation) -> datetime.timedelta:
    return timezone.now() - row.deferred_at

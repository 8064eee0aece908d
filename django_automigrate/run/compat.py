"""Can an operation run while older code still serves? Judged from the operation and the
project state just before it (as ``safety.py`` judges its warnings), for rolling deploys.

Three answers:

* **compatible**: the older code keeps working (a new table, a nullable column, an index).
* **defer**: the older code would fail (it still selects a dropped column, inserts into a
  dropped table, omits a new NOT NULL column, writes NULL where NOT NULL is coming). The
  operation is applied to Django's state now, and its database work waits for the contract
  step. What the *new* code needs meanwhile runs now: a column it no longer knows stops being
  NOT NULL and loses its foreign key constraint; a new NOT NULL column is added with its
  default kept in the database, dropped by the contract step.
* **refuse**: it cannot be split safely (renames, type changes, a new unique NOT NULL column):
  both codes cannot share one schema.

``RunPython``/``RunSQL`` cannot be judged: they are compatible unless their author marks them
(:func:`django_automigrate.contract`, or ``automigrate_contract = True`` on the migration).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Final, TypeVar

from django.db import migrations, models
from django.db.migrations.migration import Migration
from django.db.migrations.operations.base import Operation
from django.db.migrations.state import ProjectState

COMPATIBLE: Final = "compatible"
DEFER: Final = "defer"
REFUSE: Final = "refuse"

#: The attribute that marks an operation (or a whole migration) as contract work.
MARK: Final = "automigrate_contract"

#: What each kind of deferred work does, for people. Stable: JSON and history carry the codes.
KINDS = {
    "drop_column": "drops a column the older code still reads and writes",
    "drop_table": "drops a table the older code still reads and writes",
    "tighten_column": "makes a column stricter (NOT NULL, shorter) than the older code writes",
    "drop_default": "drops the database default the older code's inserts rely on",
    "marked": "marked by its author to run once the older code is gone",
}

_Op = TypeVar("_Op", bound=Operation)


def contract(operation: _Op) -> _Op:
    """Mark ``operation`` (a ``RunPython``, a ``RunSQL``, any operation) to run only in the
    contract step, once no older code serves; returns it, for use inside ``operations``."""
    setattr(operation, MARK, True)
    return operation


@dataclasses.dataclass(frozen=True)
class Verdict:
    answer: str
    #: A key of :data:`KINDS` (defer), or what cannot be split (refuse); "" when compatible.
    kind: str = ""
    #: Why the older code fails beside it, for people.
    reason: str = ""
    #: The database work that runs now (defer): what the new code needs meanwhile.
    now: tuple[Operation, ...] = ()

    @property
    def deferred(self) -> bool:
        return self.answer == DEFER


_OK = Verdict(COMPATIBLE)


def classify(
    operation: Operation, migration: Migration, before: ProjectState, *, created: set[str]
) -> Verdict:
    """The verdict on ``operation`` of ``migration``, given the state just before it.

    ``created``: models (``app.model``) created earlier in the same plan: no older code can use
    a table that did not exist before this run, so nothing done to it is deferred.
    """
    app = migration.app_label
    if getattr(operation, MARK, False) or getattr(migration, MARK, False):
        return Verdict(DEFER, "marked", KINDS["marked"])
    model_name = _model_name(operation)
    if model_name is not None and f"{app}.{model_name}" in created:
        return _OK
    if isinstance(operation, migrations.RemoveField):
        return _remove_field(operation, app, before)
    if isinstance(operation, migrations.DeleteModel):
        return _delete_model(operation, app, before)
    if isinstance(operation, migrations.AddField):
        return _add_field(operation, app)
    if isinstance(operation, migrations.AlterField):
        return _alter_field(operation, app, before)
    if isinstance(operation, migrations.RenameField):
        return Verdict(
            REFUSE,
            "rename",
            f"renames {app}.{operation.model_name}.{operation.old_name}, which the older code "
            "still reads and writes by its old name",
        )
    if isinstance(operation, migrations.RenameModel | migrations.AlterModelTable):
        name = getattr(operation, "old_name", None) or getattr(operation, "name", "")
        return Verdict(
            REFUSE,
            "rename",
            f"renames the table of {app}.{name}, which the older code still uses by its old name",
        )
    return _OK


def _model_name(operation: Operation) -> str | None:
    name = getattr(operation, "model_name", None) or getattr(operation, "name", None)
    if isinstance(operation, migrations.CreateModel) or not isinstance(name, str):
        return None
    return name.lower()


def _field(state: ProjectState, app: str, model: str, name: str) -> Any:
    found = state.models.get((app, model.lower()))
    return None if found is None else found.fields.get(name)


def _with(field: Any, **changes: Any) -> Any:
    """A copy of ``field`` with ``changes`` to its arguments."""
    _name, _path, args, kwargs = field.deconstruct()
    kwargs.update(changes)
    return type(field)(*args, **kwargs)


def _relaxed(field: Any) -> Any | None:
    """``field`` as the new code needs it while the older code still has it: nullable (the new
    code's inserts leave it out), without a foreign key constraint (the new code deletes rows it
    points at, not knowing it). None when it is so already."""
    changes: dict[str, Any] = {}
    if not field.null and not field.has_db_default():
        changes["null"] = True
    if field.remote_field is not None and getattr(field, "db_constraint", False):
        changes["db_constraint"] = False
    return _with(field, **changes) if changes else None


def _remove_field(operation: migrations.RemoveField, app: str, before: ProjectState) -> Verdict:
    field = _field(before, app, operation.model_name, operation.name)
    where = f"{app}.{operation.model_name}.{operation.name}"
    if field is None or field.many_to_many:
        return Verdict(DEFER, "drop_table", f"{KINDS['drop_table']} ({where})")
    loose = None if field.primary_key else _relaxed(field)
    now = (migrations.AlterField(operation.model_name, operation.name, loose),) if loose else ()
    return Verdict(DEFER, "drop_column", f"{KINDS['drop_column']} ({where})", now)


def _delete_model(operation: migrations.DeleteModel, app: str, before: ProjectState) -> Verdict:
    state = before.models.get((app, operation.name_lower))
    if state is None or state.options.get("proxy") or not state.options.get("managed", True):
        return _OK  # no table of its own
    now: list[Operation] = []
    for name, field in state.fields.items():
        if field.remote_field is not None and not field.many_to_many:
            loose = _relaxed(field)
            if loose is not None:
                now.append(migrations.AlterField(operation.name, name, loose))
    where = f"{app}.{operation.name}"
    return Verdict(DEFER, "drop_table", f"{KINDS['drop_table']} ({where})", tuple(now))


def _add_field(operation: migrations.AddField, app: str) -> Verdict:
    field: Any = operation.field
    if field.many_to_many or field.null or field.has_db_default():
        return _OK
    where = f"{app}.{operation.model_name}.{operation.name}"
    if field.primary_key or field.unique:
        return Verdict(
            REFUSE,
            "unique_not_null",
            f"adds {where}, NOT NULL and unique: the older code's inserts cannot fill it",
        )
    if not field.has_default():
        return Verdict(
            REFUSE,
            "not_null_without_default",
            f"adds {where}, NOT NULL without a default: the older code's inserts leave it out",
        )
    value = field.get_default()  # once, as Django fills the existing rows
    kept = _with(field, db_default=value)
    now = (migrations.AddField(operation.model_name, operation.name, kept),)
    return Verdict(
        DEFER,
        "drop_default",
        f"adds {where} NOT NULL: its default stays in the database while the older code's "
        "inserts leave it out",
        now,
    )


def _alter_field(operation: migrations.AlterField, app: str, before: ProjectState) -> Verdict:
    old: Any = _field(before, app, operation.model_name, operation.name)
    new: Any = operation.field
    if old is None:
        return _OK
    where = f"{app}.{operation.model_name}.{operation.name}"
    if (old.db_column or None) != (new.db_column or None):
        return Verdict(REFUSE, "rename", f"renames the column of {where}")
    stricter = []
    if old.null and not new.null:
        stricter.append("NOT NULL")
    old_length, new_length = getattr(old, "max_length", None), getattr(new, "max_length", None)
    if old_length and new_length and new_length < old_length:
        stricter.append(f"max_length {old_length} -> {new_length}")
    decimals = isinstance(old, models.DecimalField) and isinstance(new, models.DecimalField)
    if decimals and (
        (new.max_digits or 0) < (old.max_digits or 0)
        or (new.decimal_places or 0) < (old.decimal_places or 0)
    ):
        stricter.append("fewer digits")
    if type(old) is not type(new) and old.get_internal_type() != new.get_internal_type():
        if not _narrower_integer(old, new) and not _wider(old, new):
            return Verdict(
                REFUSE,
                "retype",
                f"changes the type of {where} ({type(old).__name__} -> {type(new).__name__}): "
                "the two codes write different values",
            )
        if _narrower_integer(old, new):
            stricter.append(f"{type(old).__name__} -> {type(new).__name__}")
    if not stricter:
        return _OK
    return Verdict(
        DEFER, "tighten_column", f"{KINDS['tighten_column']} ({where}: {', '.join(stricter)})"
    )


_INTEGERS = (
    "SmallIntegerField",
    "IntegerField",
    "BigIntegerField",
)
_TEXT = ("CharField", "TextField", "SlugField", "EmailField", "URLField")


def _rank(field: Any) -> tuple[str, int] | None:
    internal = field.get_internal_type().replace("Positive", "").replace("Auto", "Integer")
    internal = {"SmallInteger": "SmallIntegerField", "BigInteger": "BigIntegerField"}.get(
        internal, internal
    )
    if internal in _INTEGERS:
        return "int", _INTEGERS.index(internal)
    if type(field).__name__ in _TEXT or internal in ("CharField", "TextField"):
        return "text", 1 if internal == "TextField" else 0
    return None


def _wider(old: Any, new: Any) -> bool:
    a, b = _rank(old), _rank(new)
    return a is not None and b is not None and a[0] == b[0] and b[1] >= a[1]


def _narrower_integer(old: Any, new: Any) -> bool:
    a, b = _rank(old), _rank(new)
    return a is not None and b is not None and a[0] == b[0] and b[1] < a[1]

"""Warnings for operations that cannot be undone or that destroy data, judged against the
project state just before each operation (so that "narrowing" compares the field as it was)."""

from __future__ import annotations

import dataclasses
from typing import Any

from django.db import migrations, models
from django.db.migrations.operations.base import Operation
from django.db.migrations.state import ProjectState

#: Every warning code, with what it means. Stable: pipelines match on them.
CODES = {
    "drop_table": "drops a table and every row in it",
    "drop_column": "drops a column and the data in it",
    "run_python_irreversible": "RunPython without reverse code: cannot be rolled back",
    "run_sql_irreversible": "RunSQL without reverse SQL: cannot be rolled back",
    "irreversible": "the operation declares itself irreversible",
    "narrowing": "makes a column narrower: longer values are cut or rejected",
    "not_null_without_default": "makes a column NOT NULL without a default: rows holding NULL fail",
}


@dataclasses.dataclass(frozen=True)
class SafetyWarning:
    code: str
    operation: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return dataclasses.asdict(self)


def operation_warnings(
    operation: Operation, app_label: str, before: ProjectState
) -> list[SafetyWarning]:
    """The warnings for ``operation`` of ``app_label``, given the state just before it."""
    description = operation.describe()
    found: list[tuple[str, str]] = []
    if isinstance(operation, migrations.DeleteModel):
        found.append(("drop_table", f"drops the table of {app_label}.{operation.name}"))
    elif isinstance(operation, migrations.RemoveField):
        found.append(("drop_column", f"drops {app_label}.{operation.model_name}.{operation.name}"))
    elif isinstance(operation, migrations.AlterField):
        old = _field(before, app_label, operation.model_name, operation.name)
        if old is not None:
            found.extend(_alter_field_warnings(old, operation.field))
    if not operation.reversible:
        if isinstance(operation, migrations.RunPython):
            found.append(("run_python_irreversible", "no reverse_code"))
        elif isinstance(operation, migrations.RunSQL):
            found.append(("run_sql_irreversible", "no reverse_sql"))
        else:
            found.append(("irreversible", "reversible = False"))
    return [SafetyWarning(code, description, f"{CODES[code]} ({detail})") for code, detail in found]


def _field(state: ProjectState, app_label: str, model_name: str, name: str) -> Any:
    model = state.models.get((app_label, model_name.lower()))
    return None if model is None else model.fields.get(name)


def _alter_field_warnings(
    old: models.Field[Any, Any], new: models.Field[Any, Any]
) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    old_type, new_type = type(old).__name__, type(new).__name__
    # Within the CharField family only max_length matters; TextField takes anything.
    same_family = isinstance(old, models.CharField) and isinstance(new, models.CharField)
    widening = (old_type, new_type) in _WIDER or isinstance(new, models.TextField)
    if old_type != new_type and not same_family and not widening:
        found.append(("narrowing", f"type {old_type} -> {new_type}"))
    old_length, new_length = getattr(old, "max_length", None), getattr(new, "max_length", None)
    if old_length and new_length and new_length < old_length:
        found.append(("narrowing", f"max_length {old_length} -> {new_length}"))
    if isinstance(old, models.DecimalField) and isinstance(new, models.DecimalField):
        old_digits = (old.max_digits or 0, old.decimal_places or 0)
        new_digits = (new.max_digits or 0, new.decimal_places or 0)
        if new_digits[0] < old_digits[0] or new_digits[1] < old_digits[1]:
            found.append(("narrowing", f"digits {old_digits} -> {new_digits}"))
    if old.null and not new.null and not new.has_default() and not new.has_db_default():
        found.append(("not_null_without_default", "null=True -> null=False"))
    return found


#: Type changes that only widen a column.
_WIDER = {
    ("SmallIntegerField", "IntegerField"),
    ("SmallIntegerField", "BigIntegerField"),
    ("IntegerField", "BigIntegerField"),
    ("PositiveSmallIntegerField", "PositiveIntegerField"),
    ("PositiveIntegerField", "PositiveBigIntegerField"),
    ("PositiveSmallIntegerField", "PositiveBigIntegerField"),
    ("AutoField", "BigAutoField"),
    ("SmallAutoField", "AutoField"),
    ("SmallAutoField", "BigAutoField"),
}

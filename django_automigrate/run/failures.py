"""Which operation of a migration failed, read from the error's traceback."""

from __future__ import annotations

from types import TracebackType

from django.db.migrations.migration import Migration


def failing_operation(error: BaseException, migration: Migration) -> int | None:
    """The index of the operation of ``migration`` that raised ``error``, from its traceback."""
    operations = {id(op): index for index, op in enumerate(migration.operations)}
    trace: TracebackType | None = error.__traceback__
    found = None
    while trace is not None:
        candidate = trace.tb_frame.f_locals.get("self")
        if id(candidate) in operations and trace.tb_frame.f_code.co_name == "database_forwards":
            found = operations[id(candidate)]
        trace = trace.tb_next
    return found

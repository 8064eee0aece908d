"""Operations of django-automigrate's own migrations that survive a kill at any point.

On MySQL/MariaDB no DDL is transactional: a process killed between ``CREATE TABLE`` and the
index after it, or between two ``ADD COLUMN``, leaves the table half-made and the migration
unrecorded, and every later run would fail with "already exists". These operations finish such
a leftover instead. Elsewhere (PostgreSQL, SQLite) the migration's transaction already undoes it,
and they behave exactly like Django's own.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import ProjectState


def _tables(schema_editor: BaseDatabaseSchemaEditor) -> list[str]:
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        return list(connection.introspection.table_names(cursor))


class ResumableCreateModel(migrations.CreateModel):
    """``CreateModel`` that first drops an empty table an interrupted attempt left behind."""

    def database_forwards(
        self,
        app_label: str,
        schema_editor: BaseDatabaseSchemaEditor,
        from_state: ProjectState,
        to_state: ProjectState,
    ) -> None:
        model: Any = to_state.apps.get_model(app_label, self.name)
        table = model._meta.db_table
        if table in _tables(schema_editor):
            quoted = schema_editor.quote_name(table)
            with schema_editor.connection.cursor() as cursor:
                cursor.execute(f"SELECT 1 FROM {quoted} LIMIT 1")
                if cursor.fetchone() is not None:
                    raise RuntimeError(
                        f"Table {table} exists with rows, but the migration creating it is not "
                        "recorded: drop or rename it after saving what you need, then run again."
                    )
            # An interrupted first run made it (rows are only written once every one of our
            # migrations is applied): it holds nothing; make it again, whole.
            schema_editor.execute(f"DROP TABLE {quoted}")
        super().database_forwards(app_label, schema_editor, from_state, to_state)


class ResumableAddField(migrations.AddField):
    """``AddField`` that skips a column an interrupted attempt already added."""

    def database_forwards(
        self,
        app_label: str,
        schema_editor: BaseDatabaseSchemaEditor,
        from_state: ProjectState,
        to_state: ProjectState,
    ) -> None:
        model: Any = to_state.apps.get_model(app_label, self.model_name)
        connection = schema_editor.connection
        column = model._meta.get_field(self.name).column
        with connection.cursor() as cursor:
            columns = {
                info.name
                for info in connection.introspection.get_table_description(
                    cursor, model._meta.db_table
                )
            }
        if column in columns:
            return
        super().database_forwards(app_label, schema_editor, from_state, to_state)

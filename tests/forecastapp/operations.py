"""An operation that runs only on PostgreSQL: the forecast tests run one migration set on every
backend, and some statements (NOT VALID, CONCURRENTLY, identity columns) exist only there."""

from __future__ import annotations

from typing import Any

from django.db.migrations.operations.base import Operation


class OnPostgres(Operation):
    """Wraps ``operation``: its state change everywhere, its SQL on PostgreSQL only."""

    reduces_to_sql = True

    def __init__(self, operation: Operation) -> None:
        self.operation = operation
        super().__init__()

    @property
    def reversible(self) -> bool:  # type: ignore[override]
        return bool(self.operation.reversible)

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        return (self.__class__.__qualname__, [self.operation], {})

    def state_forwards(self, app_label: str, state: Any) -> None:
        self.operation.state_forwards(app_label, state)

    def database_forwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        if schema_editor.connection.vendor == "postgresql":
            self.operation.database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        if schema_editor.connection.vendor == "postgresql":
            self.operation.database_backwards(app_label, schema_editor, from_state, to_state)

    def describe(self) -> str:
        return f"{self.operation.describe()} (PostgreSQL only)"

"""Warnings for operations, judged against the state just before them."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import migrations, models
from django.db.migrations.state import ModelState, ProjectState

from django_automigrate.run.safety import CODES, operation_warnings


def state_with(**fields: models.Field[Any, Any]) -> ProjectState:
    state = ProjectState()
    state.add_model(
        ModelState("shop", "item", [("id", models.AutoField(primary_key=True)), *fields.items()])
    )
    return state


def codes(operation: Any, **fields: models.Field[Any, Any]) -> list[str]:
    return [w.code for w in operation_warnings(operation, "shop", state_with(**fields))]


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (models.CharField(max_length=100), models.CharField(max_length=50), ["narrowing"]),
        (models.CharField(max_length=50), models.CharField(max_length=100), []),
        (models.CharField(max_length=50), models.TextField(), []),
        (models.TextField(), models.CharField(max_length=50), ["narrowing"]),
        (models.IntegerField(), models.BigIntegerField(), []),
        (models.BigIntegerField(), models.IntegerField(), ["narrowing"]),
        (models.CharField(max_length=50), models.SlugField(max_length=50), []),
        (
            models.DecimalField(max_digits=10, decimal_places=2),
            models.DecimalField(max_digits=8, decimal_places=2),
            ["narrowing"],
        ),
        (models.IntegerField(null=True), models.IntegerField(), ["not_null_without_default"]),
        (models.IntegerField(null=True), models.IntegerField(default=0), []),
        (models.IntegerField(null=True), models.IntegerField(db_default=0), []),
    ],
)
def test_alter_field(
    old: models.Field[Any, Any], new: models.Field[Any, Any], expected: list[str]
) -> None:
    assert codes(migrations.AlterField("item", "value", new), value=old) == expected


def test_every_code_has_a_meaning_and_warnings_say_what_and_why() -> None:
    (warning,) = operation_warnings(
        migrations.RemoveField("item", "value"), "shop", state_with(value=models.IntegerField())
    )

    assert set(CODES) >= {"drop_table", "drop_column", "narrowing"}
    assert warning.code == "drop_column"
    assert warning.operation == "Remove field value from item"
    assert "shop.item.value" in warning.message


def test_custom_irreversible_operations_are_flagged() -> None:
    class Irreversible(migrations.RunSQL):
        reversible = False

    assert codes(migrations.SeparateDatabaseAndState()) == []
    assert codes(migrations.RunSQL("SELECT 1", migrations.RunSQL.noop)) == []
    assert "run_sql_irreversible" in codes(Irreversible("SELECT 1"))

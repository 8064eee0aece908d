"""Which operations older serving code cannot run beside, judged from the state before them."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import migrations, models
from django.db.migrations.state import ModelState, ProjectState

import django_automigrate
from django_automigrate.run import compat, deferral


def state() -> ProjectState:
    project = ProjectState()
    project.add_model(
        ModelState(
            "shop",
            "order",
            [
                ("id", models.AutoField(primary_key=True)),
                ("title", models.CharField(max_length=100)),
                ("note", models.CharField(max_length=100, null=True)),
                ("legacy", models.CharField(max_length=20)),
            ],
        )
    )
    project.add_model(
        ModelState(
            "shop",
            "coupon",
            [
                ("id", models.AutoField(primary_key=True)),
                ("order", models.ForeignKey("shop.order", models.CASCADE)),
            ],
        )
    )
    return project


def judge(operation: Any, *, created: set[str] | None = None, **attributes: Any) -> compat.Verdict:
    migration = type("Migration", (migrations.Migration,), attributes)("0002_x", "shop")
    return compat.classify(operation, migration, state(), created=created or set())


@pytest.mark.parametrize(
    ("operation", "answer", "kind"),
    [
        (migrations.RemoveField("order", "legacy"), compat.DEFER, "drop_column"),
        (migrations.DeleteModel("coupon"), compat.DEFER, "drop_table"),
        (
            migrations.AddField("order", "status", models.CharField(max_length=9, default="new")),
            compat.DEFER,
            "drop_default",
        ),
        (
            migrations.AlterField("order", "note", models.CharField(max_length=100)),
            compat.DEFER,
            "tighten_column",
        ),
        (
            migrations.AlterField("order", "title", models.CharField(max_length=50)),
            compat.DEFER,
            "tighten_column",
        ),
        (migrations.RenameField("order", "title", "name"), compat.REFUSE, "rename"),
        (migrations.RenameModel("order", "purchase"), compat.REFUSE, "rename"),
        (migrations.AlterField("order", "title", models.IntegerField()), compat.REFUSE, "retype"),
        (
            migrations.AddField("order", "code", models.CharField(max_length=9, unique=True)),
            compat.REFUSE,
            "unique_not_null",
        ),
        (migrations.AddField("order", "n", models.IntegerField(null=True)), compat.COMPATIBLE, ""),
        (
            migrations.AddField("order", "d", models.IntegerField(db_default=1)),
            compat.COMPATIBLE,
            "",
        ),
        (
            migrations.AlterField("order", "title", models.CharField(max_length=200)),
            compat.COMPATIBLE,
            "",
        ),
        (
            migrations.AlterField("order", "legacy", models.CharField(max_length=20, null=True)),
            compat.COMPATIBLE,
            "",
        ),
        (migrations.RunPython(migrations.RunPython.noop), compat.COMPATIBLE, ""),
        (
            migrations.AddIndex("order", models.Index(fields=["title"], name="t")),
            compat.COMPATIBLE,
            "",
        ),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_each_operation_gets_its_verdict(operation: Any, answer: str, kind: str) -> None:
    verdict = judge(operation)

    assert (verdict.answer, verdict.kind) == (answer, kind), verdict.reason


def test_a_removed_not_null_column_and_foreign_key_are_relaxed_now() -> None:
    column = judge(migrations.RemoveField("order", "legacy"))
    foreign_key = judge(migrations.DeleteModel("coupon"))

    assert [op.field.null for op in column.now] == [True]  # type: ignore[attr-defined]
    relaxed = foreign_key.now[0].field  # type: ignore[attr-defined]
    assert (relaxed.null, relaxed.db_constraint) == (True, False)


def test_a_new_not_null_column_keeps_its_default_in_the_database_meanwhile() -> None:
    verdict = judge(
        migrations.AddField("order", "status", models.CharField(max_length=9, default="new"))
    )

    assert verdict.now[0].field.db_default == "new"  # type: ignore[attr-defined]


def test_marked_code_and_marked_migrations_wait_for_the_contract_step() -> None:
    marked = django_automigrate.contract(migrations.RunSQL("DROP VIEW legacy"))

    assert judge(marked).kind == "marked"
    assert judge(migrations.RunSQL("SELECT 1"), automigrate_contract=True).kind == "marked"
    assert judge(migrations.RunSQL("SELECT 1")).answer == compat.COMPATIBLE


def test_nothing_done_to_a_table_created_in_the_same_run_waits() -> None:
    verdict = judge(migrations.RemoveField("order", "legacy"), created={"shop.order"})

    assert verdict.answer == compat.COMPATIBLE


def test_the_residue_puts_back_what_the_database_still_has() -> None:
    before = state()
    migration = migrations.Migration("0002_x", "shop")
    removed = deferral.residue_of(migrations.RemoveField("order", "legacy"), migration, before)
    after = state()
    migrations.RemoveField("order", "legacy").state_forwards("shop", after)
    migrations.DeleteModel("coupon").state_forwards("shop", after)
    dropped = deferral.residue_of(migrations.DeleteModel("coupon"), migration, before)
    assert removed is not None
    assert dropped is not None

    physical = deferral.with_residues(after, [removed, dropped])

    assert physical.models["shop", "order"].fields["legacy"].null is True
    assert ("shop", "coupon") in physical.models
    assert "legacy" not in after.models["shop", "order"].fields  # the state itself is untouched

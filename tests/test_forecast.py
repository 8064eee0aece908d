"""The lock forecast of ``--dry-run``: decisions on SQL strings, then every statement of a migration
set (tests.forecastapp) checked against what PostgreSQL and MariaDB really do."""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from django_automigrate.reporting.output import format_dry_run
from django_automigrate.run import forecast
from django_automigrate.run.blockers import PG_MODES
from django_automigrate.run.dryrun import DatabasePreview, MigrationPreview
from django_automigrate.run.forecast import (
    BLOCKS_READS,
    BLOCKS_WRITES,
    BRIEF_LOCK,
    LEVELS,
    REWRITES,
    SAFE,
    UNKNOWN,
    Catalog,
    ColumnInfo,
    Constraint,
    PlannedMigration,
    TableInfo,
    above,
    forecast_migrations,
    forecast_sql,
    human_seconds,
    human_size,
)
from tests import test_dryrun
from tests.servers import FreshDatabase, Server
from tests.utils import REPO, run_command

APP = "tests.forecastapp"
MB = 1024 * 1024

# --- the JSON shape ----------------------------------------------------------------------------

SESSION_SCHEMA = {
    "type": "object",
    "required": ["id", "state", "query", "query_start", "transaction_start", "user",
                 "application", "holds"],
    "properties": {"id": {"type": "integer"}},
}  # fmt: skip
TABLE_SCHEMA = {
    "type": "object",
    "required": ["table", "exists", "lock", "algorithm", "rewrites", "scans", "row_locks",
                 "size_bytes", "rows", "blockers_now"],
    "additionalProperties": False,
    "properties": {
        "table": {"type": "string"},
        "exists": {"type": "boolean"},
        "lock": {"type": "string"},
        "algorithm": {"enum": ["INSTANT", "INPLACE", "COPY", None]},
        "rewrites": {"type": "boolean"},
        "scans": {"type": "boolean"},
        "row_locks": {"type": "boolean"},
        "size_bytes": {"type": ["integer", "null"]},
        "rows": {"type": ["integer", "null"]},
        "blockers_now": {"type": "array", "items": SESSION_SCHEMA},
    },
}  # fmt: skip
VERDICTS = {"enum": [*LEVELS, UNKNOWN]}
FORECAST_SCHEMA = {
    "type": ["object", "null"],
    "required": ["verdict", "message", "seconds", "blockers_checked", "statements"],
    "additionalProperties": False,
    "properties": {
        "verdict": VERDICTS,
        "message": {"type": "string"},
        "seconds": {"type": ["number", "null"]},
        "blockers_checked": {"type": "boolean"},
        "statements": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["statement", "action", "verdict", "message", "rewrites", "scans",
                             "seconds", "tables"],
                "additionalProperties": False,
                "properties": {
                    "statement": {"type": "integer", "minimum": 0},
                    "action": {"type": "string"},
                    "verdict": VERDICTS,
                    "message": {"type": "string"},
                    "rewrites": {"type": "boolean"},
                    "scans": {"type": "boolean"},
                    "seconds": {"type": ["number", "null"]},
                    "tables": {"type": "array", "items": TABLE_SCHEMA},
                },
            },
        },
    },
}  # fmt: skip


def dry_run_schema() -> dict[str, Any]:
    """The published dry-run schema, with this file's own view of the forecast in it: the
    published one must accept what both describe."""
    schema: dict[str, Any] = json.loads(
        (REPO / "docs" / "schemas" / "dry-run-v1.schema.json").read_text()
    )
    assert "forecast" in schema["$defs"]["migration"]["required"]
    strict = copy.deepcopy(schema)
    strict["$defs"]["migration"]["properties"]["forecast"] = FORECAST_SCHEMA
    return strict


def dry_run(database: FreshDatabase) -> dict[str, Any]:
    document = test_dryrun.dry_run(database, extra_apps=APP)
    jsonschema.validate(document, dry_run_schema())
    return document


def app_migrations(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        m
        for m in document["databases"][0]["migrations"]
        if m["migration"].startswith("forecastapp.")
    ]


# --- decisions on SQL strings (no database) ----------------------------------------------------


def pg_catalog(**extra: Any) -> Catalog:
    """A PostgreSQL catalog: shop_order (100 MB, 1M rows) references shop_customer (10 MB)."""
    order = TableInfo(
        100 * MB,
        1_000_000,
        {
            "id": ColumnInfo("bigint", True),
            "customer_id": ColumnInfo("bigint", True),
            "code": ColumnInfo("character varying(20)", True),
            "note": ColumnInfo("text", False),
            "quantity": ColumnInfo("integer", True),
            "price": ColumnInfo("numeric(10,2)", True),
            "placed": ColumnInfo("timestamp without time zone", False),
            "checked": ColumnInfo("integer", False),
        },
    )
    customer = TableInfo(10 * MB, 50_000, {"id": ColumnInfo("bigint", True)})
    return Catalog(
        "postgresql",
        tables={"shop_order": order, "shop_customer": customer},
        indexes={"shop_order_code_idx": "shop_order", "shop_order_pkey": "shop_order"},
        constraints=[
            Constraint("order_customer_fk", "shop_order", "f", ("customer_id",), "shop_customer",
                       ("id",)),
            Constraint("order_checked_ck", "shop_order", "c", ("checked",)),
        ],
        version=(15, 0),
        **extra,
    )  # fmt: skip


def one(sql: str, catalog: Catalog | None = None) -> forecast.StatementForecast:
    (statement,) = forecast_sql([sql], catalog or pg_catalog())
    return statement


def locks(statement: forecast.StatementForecast) -> dict[str, str]:
    return {table.table: table.lock for table in statement.tables}


@pytest.mark.parametrize(
    ("sql", "verdict", "rewrites", "scans"),
    [
        ('ALTER TABLE "shop_order" ADD COLUMN "extra" integer NULL', BRIEF_LOCK, False, False),
        ('ALTER TABLE "shop_order" ADD COLUMN "n" integer DEFAULT 0 NOT NULL', BRIEF_LOCK, False,
         False),
        ("ALTER TABLE shop_order ADD COLUMN at timestamptz DEFAULT now()", BRIEF_LOCK, False,
         False),
        ('ALTER TABLE "shop_order" ADD COLUMN "r" double precision DEFAULT (RANDOM()) NOT NULL',
         REWRITES, True, True),
        ("ALTER TABLE shop_order ADD COLUMN u uuid DEFAULT gen_random_uuid()", REWRITES, True,
         True),
        ("ALTER TABLE shop_order ADD COLUMN s bigserial", REWRITES, True, True),
        ("ALTER TABLE shop_order ADD COLUMN s bigint GENERATED BY DEFAULT AS IDENTITY", REWRITES,
         True, True),
        ('ALTER TABLE "shop_order" ADD COLUMN "t" numeric(24, 2) GENERATED ALWAYS AS '
         '(("quantity" * "price")) STORED', REWRITES, True, True),
        ('ALTER TABLE "shop_order" ADD COLUMN "c2" varchar(10) NULL UNIQUE', BLOCKS_READS, False,
         True),
        ("ALTER TABLE shop_order ADD COLUMN k int DEFAULT 1 CHECK (k > 0)", BLOCKS_READS, False,
         True),
        ('ALTER TABLE "shop_order" ALTER COLUMN "quantity" TYPE bigint USING "quantity"::bigint',
         REWRITES, True, True),
        ('ALTER TABLE "shop_order" ALTER COLUMN "code" TYPE varchar(40)', BRIEF_LOCK, False, False),
        ('ALTER TABLE "shop_order" ALTER COLUMN "code" TYPE varchar(10)', REWRITES, True, True),
        ('ALTER TABLE "shop_order" ALTER COLUMN "code" TYPE text', BRIEF_LOCK, False, False),
        ('ALTER TABLE "shop_order" ALTER COLUMN "note" TYPE varchar(200)', REWRITES, True, True),
        ('ALTER TABLE "shop_order" ALTER COLUMN "note" TYPE varchar', BRIEF_LOCK, False, False),
        ('ALTER TABLE "shop_order" ALTER COLUMN "price" TYPE numeric(12, 2)', BRIEF_LOCK, False,
         False),
        ('ALTER TABLE "shop_order" ALTER COLUMN "price" TYPE numeric(12, 3)', REWRITES, True, True),
        ("ALTER TABLE shop_order ALTER COLUMN placed TYPE timestamptz", BRIEF_LOCK, False, False),
        ("ALTER TABLE shop_order ALTER COLUMN quantity TYPE integer USING quantity + 1", REWRITES,
         True, True),
        # Without a rewrite, the column's CHECK constraint is checked again.
        ("ALTER TABLE shop_order ALTER COLUMN checked TYPE integer", BLOCKS_READS, False, True),
        ('ALTER TABLE "shop_order" ALTER COLUMN "note" SET NOT NULL', BLOCKS_READS, False, True),
        ('ALTER TABLE "shop_order" ALTER COLUMN "code" SET NOT NULL', BRIEF_LOCK, False, False),
        ('ALTER TABLE "shop_order" ALTER COLUMN "note" DROP NOT NULL', BRIEF_LOCK, False, False),
        ("ALTER TABLE shop_order ALTER COLUMN note SET DEFAULT ''", BRIEF_LOCK, False, False),
        ('ALTER TABLE "shop_order" ADD CONSTRAINT "q_ck" CHECK ("quantity" >= 0)', BLOCKS_READS,
         False, True),
        ("ALTER TABLE shop_order ADD CONSTRAINT q_ck CHECK (quantity >= 0) NOT VALID", BRIEF_LOCK,
         False, False),
        ('ALTER TABLE "shop_order" ADD CONSTRAINT "u" UNIQUE ("customer_id", "code")',
         BLOCKS_READS, False, True),
        ("ALTER TABLE shop_order VALIDATE CONSTRAINT q_ck", SAFE, False, True),
        ('ALTER TABLE "shop_order" DROP COLUMN "note" CASCADE', BRIEF_LOCK, False, False),
        ('ALTER TABLE "shop_order" RENAME COLUMN "note" TO "remark"', BRIEF_LOCK, False, False),
        ("ALTER TABLE shop_order ALTER COLUMN code SET STATISTICS 500", SAFE, False, False),
        ("ALTER TABLE shop_order SET (autovacuum_vacuum_scale_factor = 0.01)", SAFE, False, False),
        ("ALTER TABLE shop_order SET (parallel_workers = 2, fillfactor = 70)", SAFE, False, False),
        ("ALTER TABLE shop_order SET LOGGED", REWRITES, True, True),
        ('CREATE INDEX "shop_order_note" ON "shop_order" ("note")', BLOCKS_WRITES, False, True),
        ('CREATE UNIQUE INDEX "u" ON "shop_order" ("code")', BLOCKS_WRITES, False, True),
        ('CREATE INDEX CONCURRENTLY "i" ON "shop_order" ("note")', SAFE, False, True),
        ('DROP INDEX IF EXISTS "shop_order_code_idx"', BRIEF_LOCK, False, False),
        ('DROP INDEX CONCURRENTLY IF EXISTS "shop_order_code_idx"', SAFE, False, False),
        ('COMMENT ON COLUMN "shop_order"."code" IS \'The code\'', SAFE, False, False),
        ("COMMENT ON TABLE shop_order IS 'Orders'", SAFE, False, False),
        ("UPDATE shop_order SET checked = 1", BLOCKS_WRITES, False, True),
        ("INSERT INTO shop_order (id) VALUES (1)", SAFE, False, False),
        ("LOCK TABLE shop_order IN SHARE MODE", BRIEF_LOCK, False, False),
        ("CREATE TRIGGER t BEFORE UPDATE ON shop_order FOR EACH ROW EXECUTE FUNCTION f()",
         BRIEF_LOCK, False, False),
        ("SELECT 1", SAFE, False, False),
        ("SET CONSTRAINTS ALL IMMEDIATE", SAFE, False, False),
    ],
)  # fmt: skip
def test_postgresql_decisions(sql: str, verdict: str, rewrites: bool, scans: bool) -> None:
    statement = one(sql)

    assert (statement.verdict, statement.rewrites, statement.scans) == (verdict, rewrites, scans)


def test_postgresql_lock_modes_and_tables() -> None:
    assert locks(one('ALTER TABLE "shop_order" ADD COLUMN "x" int NULL')) == {
        "shop_order": "AccessExclusiveLock"
    }
    fk = one(
        'ALTER TABLE "shop_order" ADD CONSTRAINT "fk2" FOREIGN KEY ("customer_id") '
        'REFERENCES "shop_customer" ("id") DEFERRABLE INITIALLY DEFERRED'
    )
    assert locks(fk) == {
        "shop_order": "ShareRowExclusiveLock",
        "shop_customer": "ShareRowExclusiveLock",
    }
    assert fk.verdict == BLOCKS_WRITES
    not_valid = one(
        "ALTER TABLE shop_order ADD CONSTRAINT fk2 FOREIGN KEY (customer_id) "
        "REFERENCES shop_customer (id) NOT VALID"
    )
    assert (not_valid.verdict, not_valid.scans) == (BRIEF_LOCK, False)
    validate = one("ALTER TABLE shop_order VALIDATE CONSTRAINT order_customer_fk")
    # Catalog constraints are valid: validating one again reads nothing.
    assert (validate.verdict, validate.scans) == (SAFE, False)
    assert locks(one('CREATE INDEX "i" ON "shop_order" ("note")')) == {"shop_order": "ShareLock"}
    assert locks(one('CREATE INDEX CONCURRENTLY "i" ON "shop_order" ("note")')) == {
        "shop_order": "ShareUpdateExclusiveLock"
    }
    # Dropping a foreign key, its column or its table locks the referenced table too.
    for sql in (
        "ALTER TABLE shop_order DROP CONSTRAINT order_customer_fk",
        'ALTER TABLE "shop_order" DROP COLUMN "customer_id" CASCADE',
        'DROP TABLE "shop_order" CASCADE',
        'DROP TABLE "shop_customer" CASCADE',
    ):
        assert locks(one(sql)) == dict.fromkeys(
            ("shop_order", "shop_customer"), "AccessExclusiveLock"
        ), sql
    inline = one(
        'ALTER TABLE "shop_order" ADD COLUMN "buyer_id" bigint NULL CONSTRAINT "b_fk" '
        'REFERENCES "shop_customer"("id") DEFERRABLE INITIALLY DEFERRED; '
        'SET CONSTRAINTS "b_fk" IMMEDIATE'
    )
    assert locks(inline) == {
        "shop_order": "AccessExclusiveLock",
        "shop_customer": "ShareRowExclusiveLock",
    }
    assert (inline.verdict, inline.scans) == (BRIEF_LOCK, False)  # a new NULL column: no check
    assert locks(one("ALTER INDEX shop_order_code_idx RENAME TO shop_order_code_ix")) == {}
    sequence = one('ALTER SEQUENCE IF EXISTS "shop_order_id_seq" AS bigint')
    assert (sequence.verdict, sequence.tables) == (BRIEF_LOCK, [])


def test_sizes_rates_and_messages() -> None:
    index = one('CREATE INDEX "i" ON "shop_order" ("note")')
    rewrite = one('ALTER TABLE "shop_order" ALTER COLUMN "quantity" TYPE bigint')
    check = one('ALTER TABLE "shop_order" ALTER COLUMN "note" SET NOT NULL')

    (table,) = index.tables
    assert (table.size_bytes, table.rows, table.exists) == (100 * MB, 1_000_000, True)
    assert index.seconds == pytest.approx(100 * MB / forecast.INDEX_BYTES_PER_SECOND)
    assert index.message == "blocks writes for about 1.0 s"
    assert rewrite.seconds == pytest.approx(100 * MB / forecast.REWRITE_BYTES_PER_SECOND)
    assert rewrite.message == "rewrites 100 MB, blocking reads and writes for about 2.0 s"
    assert check.message == "blocks reads and writes for about 0.5 s"
    assert table.describe() == "ShareLock on shop_order (100 MB, 1,000,000 rows)"


def test_human_sizes_and_times() -> None:
    assert [human_size(n) for n in (0, 900, 8 * 1024, 12 * MB, 1400 * MB, None)] == [
        "0 B",
        "900 B",
        "8.0 kB",
        "12 MB",
        "1.4 GB",
        "size unknown",
    ]
    assert [human_seconds(s) for s in (0.0, 0.42, 35, 600, 9000, None)] == [
        "about 0.1 s",
        "about 0.4 s",
        "about 35 s",
        "about 10 min",
        "about 2.5 h",
        "an unknown time (size unknown)",
    ]


def test_levels_are_ordered_and_unknown_is_never_above_a_limit() -> None:
    assert LEVELS == (SAFE, BRIEF_LOCK, BLOCKS_WRITES, BLOCKS_READS, REWRITES)
    assert above(REWRITES, BLOCKS_READS)
    assert above(BLOCKS_WRITES, BRIEF_LOCK)
    assert not above(BRIEF_LOCK, BRIEF_LOCK)
    assert not above(SAFE, BRIEF_LOCK)
    assert not any(above(UNKNOWN, limit) for limit in LEVELS)
    with pytest.raises(ValueError, match="unknown forecast level"):
        above(SAFE, "terrible")


def test_a_table_created_earlier_in_the_plan_costs_nothing_and_renames_keep_sizes() -> None:
    statements = forecast_sql(
        [
            'CREATE TABLE "shop_note" ("id" bigint NOT NULL PRIMARY KEY, "order_id" bigint NOT '
            'NULL REFERENCES "shop_order" ("id"))',
            'ALTER TABLE "shop_note" ALTER COLUMN "id" TYPE integer',
            'CREATE INDEX "n" ON "shop_note" ("order_id")',
            'ALTER TABLE "shop_order" RENAME TO "shop_purchase"',
            'CREATE INDEX "p" ON "shop_purchase" ("note")',
            'DROP TABLE "shop_customer" CASCADE',
            'CREATE INDEX "c" ON "shop_customer" ("id")',
        ],
        pg_catalog(),
    )

    create, alter, index, rename, renamed, drop, recreated = statements
    assert locks(create) == {
        "shop_note": "AccessExclusiveLock",
        "shop_order": "ShareRowExclusiveLock",
    }
    assert [t.exists for t in create.tables] == [False, True]
    assert create.verdict == BRIEF_LOCK  # the new table is free; the referenced one is locked
    assert (alter.verdict, alter.tables[0].exists) == (SAFE, False)
    assert alter.message == "only tables the plan creates: nothing to block"
    assert index.verdict == SAFE
    assert rename.verdict == BRIEF_LOCK
    assert renamed.tables[0].size_bytes == 100 * MB
    assert renamed.verdict == BLOCKS_WRITES
    assert drop.verdict == BRIEF_LOCK
    assert recreated.tables[0].exists is False  # dropped earlier in the plan


def test_run_python_and_unparsed_sql_are_unknown_and_never_decide_the_verdict() -> None:
    (migration,) = forecast_migrations(
        [
            PlannedMigration(
                "shop.0002",
                [
                    "--",
                    "-- Raw Python operation",
                    "--",
                    "-- THIS OPERATION CANNOT BE WRITTEN AS SQL",
                    "DO $$ BEGIN PERFORM 1; END $$;",
                    'CREATE INDEX "i" ON "shop_order" ("note");',
                ],
                transaction=False,
            )
        ],
        pg_catalog(),
    )
    (python_only,) = forecast_migrations(
        [PlannedMigration("shop.0003", ["-- THIS OPERATION CANNOT BE WRITTEN AS SQL"], True)],
        pg_catalog(),
    )

    assert migration is not None
    assert python_only is not None
    python, unparsed, index = migration.statements
    assert (python.verdict, python.action, python.message) == (
        UNKNOWN,
        "Raw Python operation",
        "runs Python: no SQL to judge",
    )
    assert unparsed.verdict == UNKNOWN
    assert "cannot judge DO" in unparsed.message
    assert index.verdict == BLOCKS_WRITES
    assert migration.verdict == BLOCKS_WRITES
    assert migration.message.endswith("2 statement(s) not judged")
    assert python_only.verdict == UNKNOWN


def test_a_statement_the_parser_trips_on_is_unknown_and_the_next_is_still_judged() -> None:
    first, second = forecast_sql(
        [
            "ALTER TABLE x ADD COLUMN y int DEFAULT",  # cut short: once an IndexError
            'ALTER TABLE "shop_order" ADD COLUMN "z" integer NULL;',
        ],
        pg_catalog(),
    )

    assert first.verdict == UNKNOWN
    assert "cannot read this statement" in first.message
    assert second.verdict == BRIEF_LOCK


def test_in_one_transaction_for_the_plan_a_lock_taken_earlier_is_held_through_later_ones() -> None:
    plan = [
        PlannedMigration("shop.0002", ['ALTER TABLE "shop_order" ADD COLUMN "z" integer NULL;'],
                         transaction=True),
        PlannedMigration("shop.0003", ['CREATE INDEX "c_email" ON "shop_customer" ("email");'],
                         transaction=True),
    ]  # fmt: skip

    separate = forecast_migrations(plan, pg_catalog())
    together = forecast_migrations(plan, pg_catalog(), one_transaction=True)

    assert [f.verdict for f in separate if f] == [BRIEF_LOCK, BLOCKS_WRITES]
    assert [f.verdict for f in together if f] == [BRIEF_LOCK, BLOCKS_READS]
    assert together[1] is not None
    assert "AccessExclusiveLock on shop_order" in together[1].message
    assert "in the run's one transaction" in together[1].message


def test_locks_held_until_the_commit_make_a_brief_lock_last() -> None:
    sql = [
        'ALTER TABLE "shop_order" ADD COLUMN "flag" boolean NULL;',
        'CREATE INDEX "shop_order_flag" ON "shop_order" ("flag");',
    ]

    atomic, alone = forecast_migrations(
        [PlannedMigration("shop.0002", sql, True), PlannedMigration("shop.0003", sql, False)],
        pg_catalog(),
    )

    assert atomic is not None
    assert alone is not None
    assert [s.verdict for s in atomic.statements] == [BRIEF_LOCK, BLOCKS_WRITES]
    # In one transaction the ACCESS EXCLUSIVE of ADD COLUMN stays while the index is built.
    assert atomic.verdict == BLOCKS_READS
    assert "AccessExclusiveLock on shop_order is held until the commit" in atomic.message
    assert alone.verdict == BLOCKS_WRITES


def test_a_missing_database_has_no_forecast_and_no_sql_is_unknown() -> None:
    missing, failed = forecast_migrations(
        [
            PlannedMigration("a.0001", None, True, "the database does not exist yet"),
            PlannedMigration("a.0002", None, True, "FieldDoesNotExist: no field"),
        ],
        pg_catalog(),
    )

    assert missing is None
    assert failed is not None
    assert (failed.verdict, failed.message) == (
        UNKNOWN,
        "no SQL to judge: FieldDoesNotExist: no field",
    )


def mysql_catalog(flavour: tuple[bool, tuple[int, ...]], *, fk_checks: bool = True) -> Catalog:
    """MySQL or MariaDB (``flavour`` is (mariadb, version)): shop_item, 40 MB, 300,000 rows."""
    mariadb, version = flavour
    columns = {
        "id": ColumnInfo("bigint(20)", True),
        "qty": ColumnInfo("int(11)", True),
        "name": ColumnInfo("varchar(50)", True, octet_length=200, char_bytes=4, indexed=True),
        "wide": ColumnInfo("varchar(100)", False, octet_length=400, char_bytes=4),
        "note": ColumnInfo("varchar(50)", False, octet_length=200, char_bytes=4),
        "price": ColumnInfo("decimal(10,2)", True),
    }
    return Catalog(
        "mysql",
        tables={"shop_item": TableInfo(40 * MB, 300_000, columns), "shop_tag": TableInfo(MB, 10)},
        version=version,
        mariadb=mariadb,
        foreign_key_checks=fk_checks,
    )


MARIADB = (True, (10, 11, 19))
MYSQL_80_20 = (False, (8, 0, 20))
MYSQL_80_35 = (False, (8, 0, 35))


@pytest.mark.parametrize(
    ("flavour", "sql", "algorithm", "lock", "rewrites", "verdict"),
    [
        (MARIADB, "ALTER TABLE `shop_item` ADD COLUMN `x` integer NULL", "INSTANT", "NONE", False,
         BRIEF_LOCK),
        (MARIADB, "ALTER TABLE `shop_item` ADD COLUMN `r` double DEFAULT (RAND()) NOT NULL",
         "INSTANT", "NONE", False, BRIEF_LOCK),
        (MYSQL_80_35, "ALTER TABLE `shop_item` ADD COLUMN `x` integer NULL", "INSTANT", "NONE",
         False, BRIEF_LOCK),
        (MYSQL_80_20, "ALTER TABLE `shop_item` ADD COLUMN `x` integer NULL FIRST", "INPLACE",
         "NONE", True, BRIEF_LOCK),
        (MARIADB, "ALTER TABLE `shop_item` ADD COLUMN `c` varchar(10) NULL UNIQUE", "INPLACE",
         "NONE", True, BRIEF_LOCK),
        (MARIADB, "ALTER TABLE `shop_item` ADD COLUMN `t` numeric(24, 2) GENERATED ALWAYS AS "
         "((`qty` * `price`)) STORED", "COPY", "SHARED", True, REWRITES),
        (MARIADB, "ALTER TABLE `shop_item` MODIFY `qty` bigint NOT NULL", "COPY", "SHARED", True,
         REWRITES),
        (MARIADB, "ALTER TABLE `shop_item` MODIFY `name` varchar(60) NOT NULL", "INSTANT", "NONE",
         False, BRIEF_LOCK),
        (MARIADB, "ALTER TABLE `shop_item` MODIFY `name` varchar(64) NOT NULL", "COPY", "SHARED",
         True, REWRITES),
        (MYSQL_80_35, "ALTER TABLE `shop_item` MODIFY `name` varchar(60) NOT NULL", "INPLACE",
         "NONE", False, BRIEF_LOCK),
        (MARIADB, "ALTER TABLE `shop_item` MODIFY `wide` varchar(200) NULL", "INSTANT", "NONE",
         False, BRIEF_LOCK),
        (MARIADB, "ALTER TABLE `shop_item` MODIFY `price` numeric(12, 2) NOT NULL", "COPY",
         "SHARED", True, REWRITES),
        (MARIADB, "ALTER TABLE `shop_item` MODIFY `note` varchar(50) NOT NULL", "INPLACE", "NONE",
         True, BRIEF_LOCK),
        (MARIADB, "ALTER TABLE `shop_item` MODIFY `wide` varchar(100) NULL COMMENT 'w'",
         "INSTANT", "NONE", False, BRIEF_LOCK),
        (MARIADB, "ALTER TABLE `shop_item` MODIFY `name` varchar(50) NULL", "INPLACE", "NONE", True,
         BRIEF_LOCK),
        (MARIADB, "ALTER TABLE `shop_item` ALTER COLUMN `note` SET DEFAULT ''", "INSTANT", "NONE",
         False, BRIEF_LOCK),
        (MARIADB, "CREATE INDEX `i` ON `shop_item` (`note`)", "INPLACE", "NONE", False,
         BRIEF_LOCK),
        (MARIADB, "ALTER TABLE `shop_item` ADD FULLTEXT INDEX `ft` (`note`)", "INPLACE", "SHARED",
         True, REWRITES),
        (MARIADB, "ALTER TABLE `shop_item` ADD CONSTRAINT `fk` FOREIGN KEY (`qty`) REFERENCES "
         "`shop_tag` (`id`)", "COPY", "SHARED", True, REWRITES),
        (MARIADB, "ALTER TABLE `shop_item` ADD COLUMN `tag_id` integer NULL , ADD CONSTRAINT `f` "
         "FOREIGN KEY (`tag_id`) REFERENCES `shop_tag`(`id`)", "COPY", "SHARED", True, REWRITES),
        (MARIADB, "ALTER TABLE `shop_item` ADD CONSTRAINT `ck` CHECK (`qty` >= 0)", "COPY",
         "SHARED", True, REWRITES),
        (MARIADB, "ALTER TABLE `shop_item` DROP COLUMN `note`", "INSTANT", "NONE", False,
         BRIEF_LOCK),
        (MARIADB, "ALTER TABLE `shop_item` DROP COLUMN `name`", "INPLACE", "NONE", False,
         BRIEF_LOCK),
        (MYSQL_80_20, "ALTER TABLE `shop_item` DROP COLUMN `note`", "INPLACE", "NONE", True,
         BRIEF_LOCK),
        (MYSQL_80_35, "ALTER TABLE `shop_item` DROP COLUMN `note`", "INSTANT", "NONE", False,
         BRIEF_LOCK),
        (MARIADB, "ALTER TABLE `shop_item` RENAME COLUMN `note` TO `remark`", "INSTANT", "NONE",
         False, BRIEF_LOCK),
        (MYSQL_80_20, "ALTER TABLE `shop_item` RENAME COLUMN `note` TO `remark`", "INPLACE",
         "NONE", False, BRIEF_LOCK),
        (MARIADB, "ALTER TABLE `shop_item` RENAME TO `shop_thing`", "INPLACE", "EXCLUSIVE", False,
         BRIEF_LOCK),
        (MARIADB, "ALTER TABLE `shop_item` COMMENT = 'Items'", "INSTANT", "NONE", False,
         BRIEF_LOCK),
        (MARIADB, "ALTER TABLE `shop_item` CONVERT TO CHARACTER SET utf8mb3", "COPY", "SHARED",
         True, REWRITES),
        (MARIADB, "ALTER TABLE `shop_item` DROP PRIMARY KEY", "COPY", "SHARED", True, REWRITES),
        (MARIADB, "ALTER TABLE `shop_item` DROP PRIMARY KEY, ADD PRIMARY KEY (`id`, `qty`)",
         "INPLACE", "NONE", True, BRIEF_LOCK),
    ],
)  # fmt: skip
def test_mysql_decisions(
    flavour: tuple[bool, tuple[int, ...]],
    sql: str,
    algorithm: str,
    lock: str,
    rewrites: bool,
    verdict: str,
) -> None:
    statement = one(sql, mysql_catalog(flavour))

    (table,) = statement.tables
    assert (table.algorithm, table.lock, table.rewrites, statement.verdict) == (
        algorithm,
        lock,
        rewrites,
        verdict,
    )


def test_mysql_foreign_keys_without_checks_dml_and_metadata_statements() -> None:
    unchecked = mysql_catalog(MARIADB, fk_checks=False)
    fk = one("ALTER TABLE `shop_item` ADD CONSTRAINT `fk` FOREIGN KEY (`qty`) REFERENCES "
             "`shop_tag` (`id`)", unchecked)  # fmt: skip
    update = one("UPDATE `shop_item` SET `note` = '' WHERE `note` IS NULL", mysql_catalog(MARIADB))
    rename = one("RENAME TABLE `shop_item` TO `shop_thing`", mysql_catalog(MARIADB))
    copy_ = one("ALTER TABLE `shop_item` MODIFY `qty` bigint NOT NULL", mysql_catalog(MARIADB))

    assert (fk.tables[0].algorithm, fk.tables[0].rewrites) == ("INPLACE", False)
    assert (update.verdict, update.tables[0].row_locks, update.tables[0].algorithm) == (
        BLOCKS_WRITES,
        True,
        None,
    )
    assert (rename.verdict, rename.tables[0].lock) == (BRIEF_LOCK, "EXCLUSIVE")
    assert copy_.message == "rewrites 40 MB (COPY), blocking writes for about 0.8 s"


def test_sqlite_remakes_are_rewrites_of_the_whole_table() -> None:
    catalog = Catalog("sqlite", tables={"shop_item": TableInfo(30 * MB, None)})
    statements = forecast_sql(
        [
            'CREATE TABLE "new__shop_item" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, '
            '"name" varchar(60) NOT NULL)',
            'INSERT INTO "new__shop_item" ("id", "name") SELECT "id", "name" FROM "shop_item"',
            'DROP TABLE "shop_item"',
            'ALTER TABLE "new__shop_item" RENAME TO "shop_item"',
            'CREATE INDEX "shop_item_name" ON "shop_item" ("name")',
            'ALTER TABLE "shop_item" ADD COLUMN "extra" integer NULL',
            'ALTER TABLE "shop_item" DROP COLUMN "extra"',
        ],
        catalog,
    )

    verdicts = [s.verdict for s in statements]
    assert verdicts == [BRIEF_LOCK, REWRITES, BRIEF_LOCK, BRIEF_LOCK, BLOCKS_WRITES, BRIEF_LOCK,
                        REWRITES]  # fmt: skip
    copy_ = statements[1]
    assert copy_.action == "copy into the remade table"
    assert {t.table: (t.lock, t.rewrites) for t in copy_.tables if t.exists} == {
        "shop_item": (forecast.SQLITE_LOCK, True)
    }
    assert copy_.message.startswith("rewrites 30 MB, blocking writes to the whole database")
    assert statements[4].tables[0].size_bytes == 30 * MB  # the remade table keeps its rows


# --- the test app on real servers --------------------------------------------------------------

PG_ROWS = [
    "INSERT INTO forecastapp_customer (name, email, nickname) "
    "SELECT 'customer ' || g, 'c' || g || '@example.com', 'n' || g FROM generate_series(1, 2000) g",
    "INSERT INTO forecastapp_tag (name) SELECT 'tag ' || g FROM generate_series(1, 1000) g",
    "INSERT INTO forecastapp_item (customer_id, code, quantity, note, price, legacy, flag, number) "
    "SELECT 1 + g % 2000, 'c' || g, g, CASE WHEN g % 2 = 0 THEN NULL ELSE 'n' END, 1.5, 'l', "
    "true, g FROM generate_series(1, 200000) g",
    "INSERT INTO forecastapp_obsolete (customer_id) SELECT 1 + g % 2000 "
    "FROM generate_series(1, 1000) g",
    "INSERT INTO forecastapp_referenced (id) SELECT g FROM generate_series(1, 100) g",
    "INSERT INTO forecastapp_referrer (referenced_id) SELECT 1 + g % 100 "
    "FROM generate_series(1, 10000) g",
]
MYSQL_ROWS = [
    "INSERT INTO forecastapp_customer (name, email, nickname) "
    "SELECT CONCAT('customer ', seq), CONCAT('c', seq, '@example.com'), CONCAT('n', seq) "
    "FROM seq_1_to_2000",
    "INSERT INTO forecastapp_tag (name) SELECT CONCAT('tag ', seq) FROM seq_1_to_1000",
    "INSERT INTO forecastapp_item (customer_id, code, quantity, note, price, legacy, flag, number) "
    "SELECT 1 + seq % 2000, CONCAT('c', seq), seq, IF(seq % 2 = 0, NULL, 'n'), 1.5, 'l', true, "
    "seq FROM seq_1_to_20000",
    "INSERT INTO forecastapp_obsolete (customer_id) SELECT 1 + seq % 2000 FROM seq_1_to_1000",
    "INSERT INTO forecastapp_referenced (id) SELECT seq FROM seq_1_to_100",
    "INSERT INTO forecastapp_referrer (referenced_id) SELECT 1 + seq % 100 FROM seq_1_to_10000",
]
FORECASTAPP_TABLES = ("customer", "tag", "item", "obsolete", "referenced", "referrer")
EXPECTED_MIGRATIONS = [
    "0002_django_forms",
    "0003_after_forms",
    "0004_remove_tag",
    "0005_postgres_forms",
    "0006_concurrently",
]


def prepare(database: FreshDatabase) -> None:
    """forecastapp's first migration applied, its tables filled, their statistics fresh."""
    result = run_command(
        database.url, "migrate", "forecastapp", "0001", AUTOMIGRATE_TEST_EXTRA_APPS=APP
    )
    assert result.returncode == 0, result.err
    if database.vendor == "postgresql":
        for sql in PG_ROWS:
            database.execute(sql)
        for table in FORECASTAPP_TABLES:
            # No autovacuum between the forecast and the checks: its visibility map would change
            # the sizes the test compares.
            database.execute(f"ALTER TABLE forecastapp_{table} SET (autovacuum_enabled = false)")
        database.execute("VACUUM ANALYZE")
    else:
        for sql in MYSQL_ROWS:
            database.execute(sql)
        database.execute(
            "ANALYZE TABLE " + ", ".join(f"forecastapp_{t}" for t in FORECASTAPP_TABLES)
        )


def each_pending_migration(database: FreshDatabase) -> Iterator[dict[str, Any]]:
    """forecastapp's pending migrations one by one, each as the dry run shows it just before it
    would run (Django writes some of its SQL from the tables as they are then). The caller runs
    its statements; it is then recorded as applied."""
    while True:
        pending = app_migrations(dry_run(database))
        if not pending:
            return
        migration = pending[0]
        yield migration
        name = migration["migration"].split(".", 1)[1]
        database.execute(
            "INSERT INTO django_migrations (app, name, applied) VALUES (%s, %s, CURRENT_TIMESTAMP)",
            ("forecastapp", name),
        )


def statements(migration: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Each SQL entry with its forecast (comment entries have none)."""
    by_index = {s["statement"]: s for s in migration["forecast"]["statements"]}
    result = []
    for index, sql in enumerate(migration["sql"]):
        if sql.strip().startswith("--"):
            continue
        result.append((sql, by_index[index]))
    return result


# --- PostgreSQL: pg_locks, relfilenode and seq_scan against the forecast -----------------------

_PG_TABLES = (
    "SELECT c.oid, c.relname, c.relfilenode FROM pg_class c "
    "WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')"
)


@dataclass
class Measured:
    """What one statement did on PostgreSQL, by table name (as the statement named it)."""

    locks: dict[str, str] = field(default_factory=dict)
    rewritten: set[str] = field(default_factory=set)
    scanned: set[str] = field(default_factory=set)
    #: Whether scans could be counted (not for CONCURRENTLY, which runs outside a transaction).
    scans_counted: bool = True


def _strongest(modes: list[str]) -> str:
    return max(modes, key=PG_MODES.index)


def _names(before: dict[int, tuple[str, int]], after: dict[int, tuple[str, int]]) -> dict[int, str]:
    # A table's name as the statement knew it: the old one for a rename, the new one for a table
    # it created.
    return {oid: (before.get(oid) or after[oid])[0] for oid in {*before, *after}}


def _tables(cursor: Any) -> dict[int, tuple[str, int]]:
    cursor.execute(_PG_TABLES)
    return {int(oid): (str(name), int(node)) for oid, name, node in cursor.fetchall()}


def pg_measure(connection: Any, sql: str) -> Measured:
    """Run ``sql`` in a transaction of its own and read, before COMMIT, the relation locks it
    holds (pg_locks), which tables got a new relfilenode, and which were read by a seq scan."""
    cursor = connection.cursor()
    before = _tables(cursor)
    cursor.execute("BEGIN")
    cursor.execute("SELECT relid, seq_scan FROM pg_stat_xact_user_tables")
    # The view holds this backend's counts not yet flushed, not only this transaction's: deltas.
    base = {int(relid): int(n) for relid, n in cursor.fetchall()}
    cursor.execute(sql)
    cursor.execute(
        "SELECT relation, mode FROM pg_locks WHERE pid = pg_backend_pid() "
        "AND locktype = 'relation' AND granted"
    )
    held = [(int(oid), str(mode)) for oid, mode in cursor.fetchall()]
    after = _tables(cursor)
    cursor.execute("SELECT relid, seq_scan FROM pg_stat_xact_user_tables")
    scans = {int(relid): int(n) - base.get(int(relid), 0) for relid, n in cursor.fetchall()}
    cursor.execute("COMMIT")
    names = _names(before, after)
    measured = Measured()
    by_table: dict[str, list[str]] = {}
    for oid, mode in held:
        if oid in names:
            by_table.setdefault(names[oid], []).append(mode)
    measured.locks = {table: _strongest(modes) for table, modes in by_table.items()}
    measured.rewritten = {
        names[oid] for oid in before.keys() & after.keys() if before[oid][1] != after[oid][1]
    }
    measured.scanned = {names[oid] for oid, n in scans.items() if n > 0 and oid in names}
    return measured


def pg_measure_concurrently(
    database: FreshDatabase, connection: Any, sql: str, table: str
) -> Measured:
    """Run a CONCURRENTLY statement (no transaction around it) while another session holds
    ROW EXCLUSIVE on ``table``: it then waits, holding its own locks, and pg_locks shows them."""
    cursor = connection.cursor()
    before = _tables(cursor)
    errors: list[BaseException] = []
    with database.connect() as blocker, database.connect() as runner:
        blocker_cursor = blocker.cursor()
        blocker_cursor.execute("BEGIN")
        blocker_cursor.execute(f'LOCK TABLE "{table}" IN ROW EXCLUSIVE MODE')
        runner_cursor = runner.cursor()
        runner_cursor.execute("SELECT pg_backend_pid()")
        pid = int(runner_cursor.fetchone()[0])

        def run() -> None:
            try:
                runner_cursor.execute(sql)
            except BaseException as exc:  # reported by the test thread
                errors.append(exc)

        thread = threading.Thread(target=run)
        thread.start()
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                cursor.execute("SELECT 1 FROM pg_locks WHERE pid = %s AND NOT granted", (pid,))
                if cursor.fetchall():
                    break
                time.sleep(0.02)
            else:
                pytest.fail(f"{sql} never waited for the blocker")
            cursor.execute(
                "SELECT relation, mode FROM pg_locks WHERE pid = %s AND locktype = 'relation' "
                "AND granted",
                (pid,),
            )
            held = [(int(oid), str(mode)) for oid, mode in cursor.fetchall()]
        finally:
            blocker_cursor.execute("COMMIT")
            thread.join(timeout=60)
    assert not errors, errors
    after = _tables(cursor)
    names = _names(before, after)
    by_table: dict[str, list[str]] = {}
    for oid, mode in held:
        if oid in names:
            by_table.setdefault(names[oid], []).append(mode)
    return Measured(
        locks={t: _strongest(modes) for t, modes in by_table.items()},
        rewritten={names[o] for o in before.keys() & after.keys() if before[o][1] != after[o][1]},
        scans_counted=False,
    )


def pg_sizes(database: FreshDatabase) -> dict[str, tuple[int, int | None]]:
    rows = database.query(
        "SELECT c.relname, pg_total_relation_size(c.oid), c.reltuples, s.n_live_tup "
        "FROM pg_class c LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid "
        "WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')"
    )
    return {
        str(name): (
            int(size),
            int(tuples) if tuples >= 0 else (None if live is None else int(live)),
        )
        for name, size, tuples, live in rows
    }


@pytest.mark.parametrize("server", ["postgresql"], indirect=True)
def test_every_statement_locks_rewrites_and_scans_as_forecast_on_postgresql(
    database: FreshDatabase,
) -> None:
    prepare(database)
    seen, checked = [], 0
    with database.connect() as connection:
        session = connection.cursor()
        # One session's scans, counted by this backend alone; the time zone Django's sessions use.
        session.execute("SET max_parallel_maintenance_workers = 0")
        session.execute("SET max_parallel_workers_per_gather = 0")
        session.execute("SET TIME ZONE 'UTC'")
        for migration in each_pending_migration(database):
            seen.append(migration["migration"].split(".", 1)[1])
            assert migration["forecast"]["blockers_checked"] is True
            sizes = pg_sizes(database)
            for sql, predicted in statements(migration):
                for table in predicted["tables"]:
                    if table["exists"] and table["table"] in sizes:
                        assert (table["size_bytes"], table["rows"]) == sizes[table["table"]], sql
                    assert table["blockers_now"] == []
            for sql, predicted in statements(migration):
                tables = {t["table"]: t for t in predicted["tables"]}
                if "CONCURRENTLY" in sql:
                    target = predicted["tables"][0]["table"]
                    measured = pg_measure_concurrently(database, connection, sql, target)
                else:
                    measured = pg_measure(connection, sql)
                context = f"{migration['migration']}: {sql}\nforecast: {predicted}"
                assert predicted["verdict"] != UNKNOWN, context
                assert {name: t["lock"] for name, t in tables.items()} == measured.locks, context
                assert {n for n, t in tables.items() if t["rewrites"]} == measured.rewritten, (
                    context
                )
                if measured.scans_counted and predicted["tables"]:
                    # The statement's own table: the referenced side of a foreign key check is
                    # read or not as the planner likes.
                    target = predicted["tables"][0]
                    assert target["scans"] == (target["table"] in measured.scanned), context
                checked += 1
    assert seen == EXPECTED_MIGRATIONS
    assert checked >= 80


# --- MariaDB: the server accepts the forecast algorithm and lock, and refuses stricter ones -----

REFUSED = (1845, 1846)
STRICTER = {"COPY": "INPLACE", "INPLACE": "INSTANT"}
LOOSER_LOCK = {"EXCLUSIVE": "SHARED", "SHARED": "NONE"}


def _refused(cursor: Any, sql: str) -> bool:
    try:
        cursor.execute(sql)
    except Exception as exc:
        code = exc.args[0] if exc.args else None
        if code in REFUSED:
            return True
        raise
    return False


def mysql_sizes(database: FreshDatabase) -> dict[str, tuple[int, int]]:
    rows = database.query(
        "SELECT TABLE_NAME, DATA_LENGTH + INDEX_LENGTH, TABLE_ROWS FROM information_schema.TABLES "
        "WHERE TABLE_SCHEMA = %s",
        (database.name,),
    )
    return {str(name): (int(size), int(count)) for name, size, count in rows}


@pytest.mark.parametrize("server", ["mysql"], indirect=True)
def test_mariadb_accepts_each_forecast_algorithm_and_lock_and_refuses_stricter_ones(
    database: FreshDatabase,
) -> None:
    version = database.query("SELECT VERSION()")[0][0]
    if "mariadb" not in str(version).lower():
        pytest.skip(f"the MySQL rules come from its documentation; this server is {version}")
    prepare(database)
    seen, probed = [], []
    with database.connect() as connection:
        cursor = connection.cursor()
        for migration in each_pending_migration(database):
            seen.append(migration["migration"].split(".", 1)[1])
            assert migration["forecast"]["blockers_checked"] is False
            sizes = mysql_sizes(database)
            for sql, predicted in statements(migration):
                for table in predicted["tables"]:
                    if table["exists"] and table["table"] in sizes:
                        assert (table["size_bytes"], table["rows"]) == sizes[table["table"]], sql
            for sql, predicted in statements(migration):
                statement = sql.strip().rstrip(";")
                head = statement.upper()
                target = predicted["tables"][0] if predicted["tables"] else None
                context = f"{sql}\nforecast: {predicted}"
                assert predicted["verdict"] != UNKNOWN, context
                if (
                    target is None
                    or target["algorithm"] is None
                    or not (
                        head.startswith("ALTER TABLE")
                        or (" INDEX " in head.split("(")[0] and head.startswith("CREATE"))
                    )
                ):
                    cursor.execute(statement)
                    continue
                separator = ", " if head.startswith("ALTER TABLE") else " "
                algorithm, lock = target["algorithm"], target["lock"]

                def clause(alg: str, lck: str, sep: str = separator, sql: str = statement) -> str:
                    return f"{sql}{sep}ALGORITHM={alg}{sep}LOCK={lck}"

                if algorithm in STRICTER:
                    assert _refused(cursor, clause(STRICTER[algorithm], lock)), context
                if algorithm == "INPLACE" and target["rewrites"]:
                    # NOCOPY is INPLACE without a rebuild: refused when the table is rebuilt.
                    assert _refused(cursor, clause("NOCOPY", lock)), context
                if lock in LOOSER_LOCK:
                    assert _refused(cursor, clause(algorithm, LOOSER_LOCK[lock])), context
                exact = "NOCOPY" if algorithm == "INPLACE" and not target["rewrites"] else algorithm
                cursor.execute(clause(exact, lock))
                probed.append((algorithm, lock, target["rewrites"]))
    assert seen == EXPECTED_MIGRATIONS
    # Every kind of answer was put to the server.
    assert {("INSTANT", "NONE", False), ("INPLACE", "NONE", False), ("INPLACE", "NONE", True),
            ("COPY", "SHARED", True)} <= set(probed)  # fmt: skip


# --- blockers now ------------------------------------------------------------------------------


@pytest.mark.parametrize("server", ["postgresql"], indirect=True)
def test_a_reader_in_an_open_transaction_blocks_alter_table_but_not_create_index_concurrently(
    database: FreshDatabase, django_connect: Callable[[FreshDatabase], Any]
) -> None:
    database.execute("CREATE TABLE shop_order (id bigint PRIMARY KEY, note text)")
    database.execute("INSERT INTO shop_order SELECT g, 'n' FROM generate_series(1, 1000) g")
    connection = django_connect(database)
    with database.connect() as reader:
        cursor = reader.cursor()
        cursor.execute("SELECT pg_backend_pid()")
        pid = int(cursor.fetchone()[0])
        cursor.execute("BEGIN")
        cursor.execute("SELECT count(*) FROM shop_order")
        try:
            (result,) = forecast.forecast_plan(
                connection,
                [
                    PlannedMigration(
                        "shop.0002",
                        [
                            'ALTER TABLE "shop_order" ADD COLUMN "flag" boolean NULL;',
                            'CREATE INDEX CONCURRENTLY "shop_order_note" ON "shop_order" ("note");',
                        ],
                        transaction=False,
                    )
                ],
            )
        finally:
            cursor.execute("ROLLBACK")
    assert result is not None
    alter, concurrently = result.statements
    (blocker,) = alter.tables[0].blockers_now
    assert blocker.id == pid
    assert blocker.state == "idle in transaction"
    assert "AccessShareLock on shop_order" in blocker.holds
    assert concurrently.tables[0].blockers_now == []
    assert result.blockers_checked is True

    preview = DatabasePreview("default", "postgresql", True, "lock", None)
    preview.migrations = [MigrationPreview("shop.0002", False, [], [], forecast=result)]
    text = format_dry_run([preview])
    assert f"blocked now by session {pid} (idle in transaction" in text
    assert "[safe] CREATE INDEX CONCURRENTLY: ShareUpdateExclusiveLock on shop_order" in text
    assert "no blocker now" in text


@pytest.mark.parametrize("server", ["postgresql"], indirect=True)
def test_a_table_locked_exclusively_does_not_hang_the_forecast(
    database: FreshDatabase, django_connect: Callable[[FreshDatabase], Any]
) -> None:
    database.execute("CREATE TABLE shop_order (id bigint PRIMARY KEY)")
    database.execute("INSERT INTO shop_order SELECT g FROM generate_series(1, 1000) g")
    database.execute("VACUUM ANALYZE shop_order")
    connection = django_connect(database)
    with database.connect() as holder:
        cursor = holder.cursor()
        cursor.execute("BEGIN")
        cursor.execute("LOCK TABLE shop_order IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        try:
            (result,) = forecast.forecast_plan(
                connection,
                [PlannedMigration("shop.0002", ['CREATE INDEX "i" ON "shop_order" ("id");'], True)],
            )
        finally:
            cursor.execute("ROLLBACK")
    assert time.monotonic() - started < 10
    assert result is not None
    (table,) = result.statements[0].tables
    # Measuring the size waits behind the lock: the page count of pg_class stands in for it.
    assert table.size_bytes == 8192 * int(
        database.query("SELECT relpages FROM pg_class WHERE relname = 'shop_order'")[0][0]
    )
    assert "sizes estimated from pg_class.relpages" in result.message
    assert table.blockers_now[0].holds == "AccessExclusiveLock on shop_order"
    assert connection.get_autocommit()  # the connection is left as it was found


# --- the dry run's JSON and text ---------------------------------------------------------------


def test_the_dry_run_json_and_text_carry_the_forecast(database: FreshDatabase) -> None:
    result = run_command(
        database.url, "migrate", "forecastapp", "0001", AUTOMIGRATE_TEST_EXTRA_APPS=APP
    )
    assert result.returncode == 0, result.err

    document = dry_run(database)
    text = run_command(database.url, "automigrate", "--dry-run", AUTOMIGRATE_TEST_EXTRA_APPS=APP)

    migrations = {m["migration"]: m for m in app_migrations(document)}
    forms = migrations["forecastapp.0002_django_forms"]["forecast"]
    assert forms["verdict"] == REWRITES
    assert forms["blockers_checked"] is (database.vendor == "postgresql")
    verdicts = {s["verdict"] for s in forms["statements"]}
    assert UNKNOWN in verdicts  # the RunPython
    assert all(t["blockers_now"] == [] for s in forms["statements"] for t in s["tables"])
    if database.vendor == "sqlite":
        remakes = [s for s in forms["statements"] if s["action"] == "copy into the remade table"]
        assert remakes
        assert all(s["verdict"] == REWRITES for s in remakes)
    elif database.vendor == "mysql":
        algorithms = {t["algorithm"] for s in forms["statements"] for t in s["tables"]}
        assert {"INSTANT", "INPLACE", "COPY"} <= algorithms
    else:
        assert migrations["forecastapp.0006_concurrently"]["forecast"]["verdict"] == SAFE
    # The other apps only create tables (or run Python).
    others = [m for m in document["databases"][0]["migrations"] if m not in migrations.values()]
    assert others
    assert all(m["forecast"]["verdict"] in (SAFE, BRIEF_LOCK, UNKNOWN) for m in others)
    assert text.returncode == 0, text.err
    assert "     forecast: rewrites: rewrites " in text.out
    assert "       [unknown] Raw Python operation: runs Python: no SQL to judge" in text.out


def test_a_missing_database_has_a_null_forecast(tmp_path: Path) -> None:
    missing = FreshDatabase(
        Server("sqlite", folder=tmp_path), "x", f"sqlite:///{tmp_path / 'no.db'}"
    )

    document = dry_run(missing)

    migrations = document["databases"][0]["migrations"]
    assert migrations
    assert all(m["forecast"] is None for m in migrations)

"""The lock forecast of ``--dry-run`` next to what PostgreSQL does, on a table of millions of rows.

    python benchmarks/forecast_large.py [--rows 3000000] [--postgres-url URL] [--keep]

It creates a database ``forecast_bench_*`` with ``bench_customer`` (10,000 rows) and
``bench_item`` (``--rows`` rows, from generate_series), then a migration set against them that
Django writes the SQL of: add a nullable column, add a column with a default, alter a type int ->
bigint, set NOT NULL, create an index, create an index concurrently, add a foreign key. The
forecast (``run.forecast.forecast_plan``, as ``--dry-run`` calls it) is made for the whole plan
first. Then each statement runs, in a transaction of its own where it can, while a second
connection samples ``pg_locks`` for the running session every 5 ms; before COMMIT the session
reads its own ``pg_locks`` and ``relfilenode``s.

Progress goes to stderr; the results are a markdown table on stdout, with the rates the estimates
assume next to the ones measured. The database is dropped at the end unless ``--keep``. Run by
hand; the numbers belong in notes and docs, never in assertions.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pgserver import PostgresServer

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SAMPLE_SECONDS = 0.005
MB = 1024 * 1024
#: The estimate's kinds of work, lightest first (as run.forecast orders them).
WORK_ORDER = ("", "scan", "index", "write", "rewrite")


@contextlib.contextmanager
def bench_database(server: PostgresServer, keep: bool) -> Iterator[str]:
    name = f"forecast_bench_{uuid.uuid4().hex[:8]}"
    server.create(name)
    try:
        yield name
    finally:
        if keep:
            progress(f"kept database {name}")
        else:
            server.drop(name)


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- the migration set -------------------------------------------------------------------------


def migrations() -> tuple[Any, list[Any]]:
    """The initial migration (applied for real) and the pending ones (forecast, then run)."""
    from django.contrib.postgres.operations import AddIndexConcurrently
    from django.db import migrations as m
    from django.db import models

    def migration(name: str, *operations: Any, atomic: bool = True) -> Any:
        attributes = {"operations": list(operations), "atomic": atomic}
        return type("Migration", (m.Migration,), attributes)(name, "bench")

    big = models.BigAutoField(primary_key=True, serialize=False)
    initial = migration(
        "0001_initial",
        m.CreateModel("Customer", [("id", big.clone()), ("name", models.CharField(max_length=50))]),
        m.CreateModel(
            "Item",
            [
                ("id", big.clone()),
                ("customer", models.BigIntegerField(db_column="customer_id")),
                ("quantity", models.IntegerField()),
                ("code", models.CharField(max_length=20)),
                ("note", models.CharField(max_length=50, null=True)),
            ],
        ),
    )
    item = "item"
    pending = [
        migration("0002_extra", m.AddField(item, "extra", models.IntegerField(null=True))),
        migration("0003_score", m.AddField(item, "score", models.IntegerField(default=0))),
        migration("0004_quantity_bigint", m.AlterField(item, "quantity", models.BigIntegerField())),
        migration(
            "0005_note_not_null", m.AlterField(item, "note", models.CharField(max_length=50))
        ),
        migration(
            "0006_code_index", m.AddIndex(item, models.Index(fields=["code"], name="code_ix"))
        ),
        migration(
            "0007_score_index_concurrently",
            AddIndexConcurrently(item, models.Index(fields=["score"], name="score_cix")),
            atomic=False,
        ),
        migration(
            "0008_customer_fk",
            m.AlterField(
                item,
                "customer",
                models.ForeignKey(
                    "bench.customer", models.CASCADE, db_column="customer_id", db_index=False
                ),
            ),
        ),
    ]
    return initial, pending


def set_up(connection: Any, rows: int) -> Any:
    """Apply the initial migration, fill the tables, and return the state it leaves."""
    from django.db.migrations.state import ProjectState

    initial, _ = migrations()
    state = ProjectState()
    with connection.schema_editor() as editor:
        state = initial.apply(state, editor)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO bench_customer (name) SELECT 'customer ' || g "
            "FROM generate_series(1, 10000) g"
        )
        cursor.execute(
            "INSERT INTO bench_item (customer_id, quantity, code, note) "
            "SELECT 1 + g % 10000, g % 1000, 'code-' || (g % 50000), 'note ' || g "
            f"FROM generate_series(1, {rows}) g"
        )
        for table in ("bench_customer", "bench_item"):
            cursor.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")
            cursor.execute(f"VACUUM ANALYZE {table}")
    return state


def collect(connection: Any, state: Any) -> list[tuple[str, list[str], bool]]:
    """(label, statements, atomic) of each pending migration, as ``sqlmigrate`` prints them."""
    _, pending = migrations()
    plan = []
    for migration in pending:
        with connection.schema_editor(collect_sql=True, atomic=False) as editor:
            state = migration.apply(state, editor, collect_sql=True)
        plan.append((f"bench.{migration.name}", list(editor.collected_sql), migration.atomic))
    return plan


# --- measuring ---------------------------------------------------------------------------------


@dataclasses.dataclass
class Measured:
    seconds: float
    #: The strongest mode on each table, read by the session itself before COMMIT.
    locks: dict[str, str]
    #: The strongest mode on each table, seen by the sampler while the statement ran.
    sampled: dict[str, str]
    rewritten: set[str]


class Sampler:
    """Polls pg_locks for one session from a connection of its own."""

    def __init__(self, server: PostgresServer, database: str, pid: int) -> None:
        self._connection = server.connect(database)
        self._pid = pid
        self._stop = threading.Event()
        self.seen: dict[str, list[str]] = {}
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._connection.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            rows = self._connection.execute(
                "SELECT c.relname, l.mode FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                "WHERE l.pid = %s AND l.locktype = 'relation' AND l.granted "
                "AND c.relkind IN ('r', 'p') AND c.relnamespace = 'public'::regnamespace",
                (self._pid,),
            ).fetchall()
            for table, mode in rows:
                self.seen.setdefault(str(table), []).append(str(mode))
            time.sleep(SAMPLE_SECONDS)


def strongest(modes: list[str]) -> str:
    from django_automigrate.run.blockers import PG_MODES

    return max(modes, key=PG_MODES.index)


def relfilenodes(session: Any) -> dict[str, int]:
    rows = session.execute(
        "SELECT relname, relfilenode FROM pg_class WHERE relkind IN ('r', 'p') "
        "AND relnamespace = 'public'::regnamespace"
    ).fetchall()
    return {str(name): int(node) for name, node in rows}


def run_statement(server: PostgresServer, database: str, session: Any, sql: str) -> Measured:
    pid = int(session.execute("SELECT pg_backend_pid()").fetchone()[0])
    before = relfilenodes(session)
    in_transaction = "CONCURRENTLY" not in sql
    locks: dict[str, str] = {}
    with Sampler(server, database, pid) as sampler:
        started = time.perf_counter()
        if in_transaction:
            session.execute("BEGIN")
        session.execute(sql)
        seconds = time.perf_counter() - started
        if in_transaction:
            rows = session.execute(
                "SELECT c.relname, l.mode FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                "WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation' AND l.granted "
                "AND c.relkind IN ('r', 'p') AND c.relnamespace = 'public'::regnamespace"
            ).fetchall()
            by_table: dict[str, list[str]] = {}
            for table, mode in rows:
                by_table.setdefault(str(table), []).append(str(mode))
            locks = {table: strongest(modes) for table, modes in by_table.items()}
            after = relfilenodes(session)
            session.execute("COMMIT")
        else:
            after = relfilenodes(session)
    sampled = {table: strongest(modes) for table, modes in sampler.seen.items()}
    rewritten = {t for t in before.keys() & after.keys() if before[t] != after[t]}
    return Measured(seconds, locks, sampled, rewritten)


# --- the report --------------------------------------------------------------------------------


def short(sql: str, width: int = 58) -> str:
    text = " ".join(sql.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def lock_cell(locks: dict[str, str]) -> str:
    names = {"AccessExclusiveLock": "AEL", "ShareRowExclusiveLock": "SRE", "ShareLock": "Share",
             "ShareUpdateExclusiveLock": "SUE", "RowExclusiveLock": "RowExcl",
             "AccessShareLock": "AccessShare", "RowShareLock": "RowShare",
             "ExclusiveLock": "Excl"}  # fmt: skip
    return ", ".join(f"{names.get(mode, mode)} {table.removeprefix('bench_')}"
                     for table, mode in sorted(locks.items())) or "-"  # fmt: skip


def measure(args: argparse.Namespace) -> str:
    import django
    from django.conf import settings

    server = PostgresServer(args.postgres_url)
    with bench_database(server, args.keep) as name:
        settings.configure(
            DATABASES={"default": server.settings(name)},
            INSTALLED_APPS=[],
            USE_TZ=True,
            DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        )
        django.setup()
        from django.db import connection

        from django_automigrate.run import forecast
        from django_automigrate.run.forecast import human_size

        progress(f"filling bench_item with {args.rows:,} rows")
        started = time.perf_counter()
        state = set_up(connection, args.rows)
        progress(f"filled in {time.perf_counter() - started:.0f} s; writing the plan's SQL")
        plan = collect(connection, state)
        started = time.perf_counter()
        planned = [forecast.PlannedMigration(label, sql, atomic) for label, sql, atomic in plan]
        forecasts = forecast.forecast_plan(connection, planned)
        forecast_seconds = time.perf_counter() - started
        version = connection.cursor().connection.info.server_version
        # What the catalog said when the forecast was made: the forecast must say the same.
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT relname, pg_total_relation_size(oid), reltuples::bigint FROM pg_class "
                "WHERE relname IN ('bench_item', 'bench_customer')"
            )
            catalog = {name: (size, rows) for name, size, rows in cursor.fetchall()}
        connection.close()
        forecast_sizes = {
            table.table: (table.size_bytes, table.rows)
            for result in forecasts
            if result is not None
            for statement in result.statements
            for table in statement.tables
            if table.exists and table.table in catalog
        }
        size_lines = [
            f"* {table}: forecast {human_size(size)} ({size:,} bytes), {rows:,} rows; catalog "
            f"{catalog[table][0]:,} bytes, {catalog[table][1]:,} rows: "
            + ("same" if (size, rows) == catalog[table] else "DIFFERENT")
            for table, (size, rows) in sorted(forecast_sizes.items())
            if size is not None and rows is not None
        ]

        lines = [
            "| migration | statement | forecast: verdict | lock | rewrites | size | est. s | "
            "measured: lock (in txn) | lock (sampled) | rewrote | s |",
            "|---|---|---|---|---|---|---:|---|---|---|---:|",
        ]
        rates: dict[str, list[tuple[int, float]]] = {}
        mismatches = 0
        with server.connect(name) as session:
            session.execute("SET max_parallel_maintenance_workers = 0")
            for (label, sql, _), result in zip(plan, forecasts, strict=True):
                assert result is not None
                for statement in result.statements:
                    entry = sql[statement.statement]
                    progress(f"{label}: {short(entry, 70)}")
                    measured = run_statement(server, name, session, entry)
                    predicted = {t.table: t.lock for t in statement.tables}
                    rewrites = {t.table for t in statement.tables if t.rewrites}
                    seen = measured.locks or measured.sampled
                    if predicted != seen or rewrites != measured.rewritten:
                        mismatches += 1
                    size = max((t.size_bytes or 0 for t in statement.tables if t.exists), default=0)
                    # The measured rate: the bytes the estimate counts, over the time it took.
                    works = [t for t in statement.tables if t.exists and t.work and t.size_bytes]
                    if works:
                        work = max(works, key=lambda t: WORK_ORDER.index(t.work)).work
                        counted = sum(t.size_bytes or 0 for t in works if t.work == work)
                        rates.setdefault(work, []).append((counted, measured.seconds))
                    lines.append(
                        f"| {label.split('.')[1]} | `{short(entry)}` | {statement.verdict} | "
                        f"{lock_cell(predicted)} | {'yes' if rewrites else 'no'} | "
                        f"{human_size(size) if size else '-'} | "
                        f"{statement.seconds or 0:.1f} | {lock_cell(measured.locks)} | "
                        f"{lock_cell(measured.sampled)} | "
                        f"{'yes' if measured.rewritten else 'no'} | {measured.seconds:.2f} |"
                    )
    assumed = {
        "scan": forecast.SCAN_BYTES_PER_SECOND,
        "index": forecast.INDEX_BYTES_PER_SECOND,
        "rewrite": forecast.REWRITE_BYTES_PER_SECOND,
        "write": forecast.REWRITE_BYTES_PER_SECOND,
    }
    rate_lines = [
        f"* {work}: assumed {assumed[work] / MB:.0f} MB/s, measured "
        + ", ".join(f"{size / seconds / MB:.0f}" for size, seconds in samples if seconds > 0)
        + " MB/s (table size / statement time)"
        for work, samples in sorted(rates.items())
    ]
    header = (
        f"PostgreSQL {version // 10000}.{version % 10000}, bench_item {args.rows:,} rows; "
        f"forecast of {len(plan)} migrations made in {forecast_seconds * 1000:.0f} ms; "
        f"{mismatches} statement(s) whose measured locks or rewrites differ from the forecast. "
        "The in-transaction read is exact; the sampler (every 5 ms, from a second connection) "
        "is the only view of CONCURRENTLY and may miss a lock held for less than that."
    )
    return "\n\n".join(
        [
            header,
            "\n".join(lines),
            "Sizes (pg_total_relation_size, reltuples):\n\n" + "\n".join(size_lines),
            "Rates:\n\n" + "\n".join(rate_lines),
        ]
    )


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=3_000_000)
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "AUTOMIGRATE_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres"
        ),
    )
    parser.add_argument("--keep", action="store_true", help="keep the database")
    return parser.parse_args()


def main() -> None:
    print(measure(parse_arguments()))


if __name__ == "__main__":
    main()

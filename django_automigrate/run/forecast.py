"""The lock-impact forecast of ``--dry-run``: for each statement a run would execute, which existing
tables it locks, how (PostgreSQL lock mode; MySQL/MariaDB online DDL algorithm and lock level;
SQLite's database write lock), whether it rewrites or reads the whole table under that lock, how
big those tables are right now, who would block it right now (PostgreSQL), and a verdict.

Nothing here writes or takes a lock that could wait: the statements are parsed, never run, and
the catalog is read (on PostgreSQL with a short ``lock_timeout``, since measuring a table's size
takes a weak lock on it, which queues behind a pending ``ACCESS EXCLUSIVE``).

The rules come from each server's documentation, checked against the servers themselves by
``tests/test_forecast.py`` (PostgreSQL 15 and MariaDB 10.11; MySQL 8.0's rules are from its
documentation only). A statement that cannot be judged is ``unknown``, never a guess.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper

from django_automigrate.conf import LOCK_IMPACT_LEVELS
from django_automigrate.run import blockers
from django_automigrate.run.blockers import PG_MODES, Session

# --- levels ------------------------------------------------------------------------------------

SAFE = "safe"
BRIEF_LOCK = "brief_lock"
BLOCKS_WRITES = "blocks_writes"
BLOCKS_READS = "blocks_reads"
REWRITES = "rewrites"
UNKNOWN = "unknown"

#: The verdicts, mildest first. ``unknown`` (a statement that cannot be judged) is not among them:
#: it is never above any limit.
LEVELS = LOCK_IMPACT_LEVELS
assert (SAFE, BRIEF_LOCK, BLOCKS_WRITES, BLOCKS_READS, REWRITES) == LEVELS


def above(level: str, limit: str) -> bool:
    """Whether ``level`` is worse than ``limit`` (a gate refuses such runs). ``unknown`` never
    is."""
    if limit not in LEVELS:
        raise ValueError(f"unknown forecast level {limit!r}: expected one of {', '.join(LEVELS)}")
    if level == UNKNOWN:
        return False
    return LEVELS.index(level) > LEVELS.index(limit)


def worst(levels: Iterable[str]) -> str:
    """The worst of ``levels``, ignoring ``unknown`` (``unknown`` when nothing else is there)."""
    known = [level for level in levels if level != UNKNOWN]
    return max(known, key=LEVELS.index) if known else UNKNOWN


# --- rates -------------------------------------------------------------------------------------

MB = 1024 * 1024
#: Rough rates for the time estimates, from a laptop-class server with the table in cache: real
#: servers vary several-fold either way (disks, cache, CPU, indexes, TOAST). They order the
#: statements and give the magnitude; they are no promise. ``benchmarks/forecast_large.py``
#: measures them on the server at hand.
SCAN_BYTES_PER_SECOND = 200 * MB  # reading the table to check a constraint
INDEX_BYTES_PER_SECOND = 100 * MB  # reading it, sorting and writing an index
REWRITE_BYTES_PER_SECOND = 50 * MB  # writing a new copy of it and rebuilding every index

_RATES = {
    "scan": SCAN_BYTES_PER_SECOND,
    "index": INDEX_BYTES_PER_SECOND,
    "rewrite": REWRITE_BYTES_PER_SECOND,
    "write": REWRITE_BYTES_PER_SECOND,  # DML changing every row writes a new version of each
}
_WORK_ORDER = ("", "scan", "index", "write", "rewrite")


def human_size(size: int | None) -> str:
    """``0 B``, ``8.0 kB``, ``12 MB``, ``1.4 GB`` (powers of 1024)."""
    if size is None:
        return "size unknown"
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            break
        value /= 1024
    if unit == "B":
        return f"{size} B"
    return f"{value:.1f} {unit}" if value < 10 else f"{value:.0f} {unit}"


def human_seconds(seconds: float | None) -> str:
    """``about 0.4 s``, ``about 35 s``, ``about 12 min``; ``an unknown time`` without a size."""
    if seconds is None:
        return "an unknown time (size unknown)"
    if seconds < 10:
        return f"about {max(seconds, 0.1):.1f} s"
    if seconds < 120:
        return f"about {seconds:.0f} s"
    if seconds < 7200:
        return f"about {seconds / 60:.0f} min"
    return f"about {seconds / 3600:.1f} h"


# --- what the forecast says --------------------------------------------------------------------


@dataclasses.dataclass
class TableForecast:
    """One table one statement touches."""

    table: str
    #: False for a table the plan creates (empty when the statement runs): it costs nothing.
    exists: bool
    #: PostgreSQL: the strongest lock mode, as ``pg_locks`` spells it. MySQL/MariaDB: the lock
    #: level the online DDL allows (``NONE``, ``SHARED``, ``EXCLUSIVE``); SQLite: ``database
    #: write lock``.
    lock: str
    #: MySQL/MariaDB: ``INSTANT``, ``INPLACE`` or ``COPY``; None elsewhere and for DML.
    algorithm: str | None = None
    rewrites: bool = False
    scans: bool = False
    #: UPDATE/DELETE: the rows it changes stay locked against writes until the commit.
    row_locks: bool = False
    size_bytes: int | None = None
    rows: int | None = None
    #: PostgreSQL: the sessions that hold or wait for a conflicting lock on it right now.
    blockers_now: list[Session] = dataclasses.field(default_factory=list)
    #: Which rate its time estimate uses ("", scan, index, write, rewrite); not in the JSON.
    work: str = ""

    @property
    def seconds(self) -> float | None:
        if not self.exists or not self.work:
            return 0.0
        if self.size_bytes is None:
            return None
        return self.size_bytes / _RATES[self.work]

    def describe(self) -> str:
        """``AccessExclusiveLock on "shop_order" (12 MB, 200,000 rows)``"""
        lock = f"{self.algorithm}, LOCK={self.lock}" if self.algorithm else self.lock
        if not self.exists:
            return f"{lock} on {self.table} (created by the plan)"
        rows = f"{self.rows:,} rows" if self.rows is not None else "rows unknown"
        return f"{lock} on {self.table} ({human_size(self.size_bytes)}, {rows})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "exists": self.exists,
            "lock": self.lock,
            "algorithm": self.algorithm,
            "rewrites": self.rewrites,
            "scans": self.scans,
            "row_locks": self.row_locks,
            "size_bytes": self.size_bytes,
            "rows": self.rows,
            "blockers_now": [session.to_dict() for session in self.blockers_now],
        }


@dataclasses.dataclass
class StatementForecast:
    """One entry of a migration's SQL (``MigrationPreview.sql[statement]``)."""

    statement: int
    #: What it does, in a few words: ``ADD COLUMN``, ``CREATE INDEX CONCURRENTLY``...
    action: str
    verdict: str
    message: str
    tables: list[TableForecast] = dataclasses.field(default_factory=list)
    #: The estimate in seconds of the time it holds its lock; None when a size is unknown.
    seconds: float | None = 0.0

    @property
    def rewrites(self) -> bool:
        return any(t.rewrites and t.exists for t in self.tables)

    @property
    def scans(self) -> bool:
        return any(t.scans and t.exists for t in self.tables)

    @property
    def locks_something(self) -> bool:
        """Whether a person needs a line about it: it locks an existing table, cannot be
        judged, or blocks without a table lock (ALTER SEQUENCE)."""
        if self.verdict == UNKNOWN or any(t.exists for t in self.tables):
            return True
        return not self.tables and self.verdict != SAFE

    def to_dict(self) -> dict[str, Any]:
        return {
            "statement": self.statement,
            "action": self.action,
            "verdict": self.verdict,
            "message": self.message,
            "rewrites": self.rewrites,
            "scans": self.scans,
            "seconds": _round(self.seconds),
            "tables": [table.to_dict() for table in self.tables],
        }


@dataclasses.dataclass
class MigrationForecast:
    """A migration's forecast: the worst of its statements."""

    verdict: str
    message: str
    statements: list[StatementForecast] = dataclasses.field(default_factory=list)
    seconds: float | None = 0.0
    #: Whether ``blockers_now`` was asked (PostgreSQL only: elsewhere the lists stay empty).
    blockers_checked: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "message": self.message,
            "seconds": _round(self.seconds),
            "blockers_checked": self.blockers_checked,
            "statements": [statement.to_dict() for statement in self.statements],
        }


def _round(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 3)


@dataclasses.dataclass(frozen=True)
class PlannedMigration:
    """What the forecast needs of one migration of the plan (the dry run's preview)."""

    label: str
    #: The statements as ``sqlmigrate`` prints them; None when they could not be generated.
    sql: list[str] | None
    #: Whether it runs in one transaction: its locks are then held until it commits.
    transaction: bool
    sql_error: str = ""


# --- the catalog -------------------------------------------------------------------------------


@dataclasses.dataclass
class ColumnInfo:
    #: PostgreSQL: ``format_type()``; MySQL: ``COLUMN_TYPE``.
    type: str
    not_null: bool
    #: MySQL: the longest value in bytes (VARCHAR), and bytes per character.
    octet_length: int | None = None
    char_bytes: int | None = None
    #: MySQL: part of an index.
    indexed: bool = False


@dataclasses.dataclass
class TableInfo:
    size_bytes: int | None
    rows: int | None
    columns: dict[str, ColumnInfo] = dataclasses.field(default_factory=dict)
    #: MySQL: the table has a FULLTEXT index / its ROW_FORMAT (both stop instant ADD COLUMN).
    fulltext: bool = False
    row_format: str = ""


@dataclasses.dataclass
class Constraint:
    name: str
    table: str
    #: PostgreSQL's letters: f (foreign key), c (check), u (unique), p (primary key), x.
    kind: str
    columns: tuple[str, ...] = ()
    ref_table: str = ""
    ref_columns: tuple[str, ...] = ()
    valid: bool = True
    #: A CHECK of the form ``col IS NOT NULL`` proves that column has no NULL (PostgreSQL 12+).
    not_null_of: str = ""


@dataclasses.dataclass
class Catalog:
    """What the forecast reads of the database before the plan runs."""

    vendor: str
    tables: dict[str, TableInfo] = dataclasses.field(default_factory=dict)
    #: Index name -> table.
    indexes: dict[str, str] = dataclasses.field(default_factory=dict)
    constraints: list[Constraint] = dataclasses.field(default_factory=list)
    #: PostgreSQL (15, 20); MySQL (8, 0, 35); MariaDB (10, 11, 19).
    version: tuple[int, ...] = ()
    mariadb: bool = False
    #: PostgreSQL: the session's time zone has a fixed zero offset, so a timestamp <->
    #: timestamptz change rewrites nothing.
    utc: bool = True
    #: MySQL: ADD FOREIGN KEY can be INPLACE only with foreign_key_checks off.
    foreign_key_checks: bool = True
    #: Why a size could not be read, when it could not (said in the messages).
    note: str = ""


def load_catalog(connection: BaseDatabaseWrapper, names: Iterable[str]) -> Catalog:
    """The catalog rows of the tables, indexes and constraints among ``names`` (every identifier
    the plan's SQL mentions), and of the tables their foreign keys link to."""
    names = sorted({name for name in names if name})
    if connection.vendor == "postgresql":
        return _pg_catalog(connection, names)
    if connection.vendor == "mysql":
        return _mysql_catalog(connection, names)
    if connection.vendor == "sqlite":
        return _sqlite_catalog(connection, names)
    return Catalog(connection.vendor)


def _pg_catalog(connection: BaseDatabaseWrapper, names: list[str]) -> Catalog:
    catalog = Catalog("postgresql", version=_pg_version(connection))
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('TimeZone')")
        catalog.utc = str(cursor.fetchone()[0]).lower() in _UTC_ZONES
        cursor.execute(
            "SELECT i.relname, t.relname FROM pg_index x "
            "JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid "
            "WHERE i.relname = ANY(%s) AND pg_table_is_visible(i.oid)",
            [names],
        )
        catalog.indexes = {str(index): str(table) for index, table in cursor.fetchall()}
        tables = sorted({*names, *catalog.indexes.values()})
        cursor.execute(
            "SELECT con.conname, con.contype, t.relname, coalesce(f.relname, ''), "
            "con.convalidated, pg_get_constraintdef(con.oid), "
            "ARRAY(SELECT a.attname FROM pg_attribute a WHERE a.attrelid = con.conrelid "
            "AND a.attnum = ANY(con.conkey)), "
            "ARRAY(SELECT a.attname FROM pg_attribute a WHERE a.attrelid = con.confrelid "
            "AND a.attnum = ANY(con.confkey)) "
            "FROM pg_constraint con JOIN pg_class t ON t.oid = con.conrelid "
            "LEFT JOIN pg_class f ON f.oid = con.confrelid "
            "WHERE pg_table_is_visible(t.oid) AND con.contype IN ('f', 'c', 'u', 'p', 'x') "
            "AND (t.relname = ANY(%s) OR f.relname = ANY(%s))",
            [tables, tables],
        )
        for name, kind, table, ref, valid, definition, keys, ref_keys in cursor.fetchall():
            catalog.constraints.append(
                Constraint(
                    name=str(name),
                    table=str(table),
                    kind=str(kind),
                    columns=tuple(keys or ()),
                    ref_table=str(ref),
                    ref_columns=tuple(ref_keys or ()),
                    valid=bool(valid),
                    not_null_of=_not_null_check(str(definition)) if kind == "c" else "",
                )
            )
        tables = sorted(
            {*tables, *(c.table for c in catalog.constraints)}
            | {c.ref_table for c in catalog.constraints if c.ref_table}
        )
        cursor.execute(
            "SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull "
            "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
            "WHERE c.relname = ANY(%s) AND pg_table_is_visible(c.oid) "
            "AND c.relkind IN ('r', 'p', 'm') AND a.attnum > 0 AND NOT a.attisdropped",
            [tables],
        )
        columns: dict[str, dict[str, ColumnInfo]] = {}
        for table, column, type_, not_null in cursor.fetchall():
            columns.setdefault(str(table), {})[str(column)] = ColumnInfo(str(type_), not_null)
    for table, size, rows in _pg_sizes(connection, tables, catalog):
        catalog.tables[table] = TableInfo(size, rows, columns.get(table, {}))
    return catalog


_UTC_ZONES = frozenset(
    {"utc", "etc/utc", "gmt", "etc/gmt", "uct", "etc/uct", "zulu", "etc/zulu", "universal",
     "etc/universal", "greenwich", "etc/greenwich", "gmt0", "etc/gmt0", "gmt+0", "gmt-0"}
)  # fmt: skip


def _pg_version(connection: BaseDatabaseWrapper) -> tuple[int, ...]:
    number = int(getattr(connection, "pg_version", 0) or 0)
    return (number // 10000, number % 10000)


_SIZES_SQL = (
    "SELECT c.relname, {size}, c.reltuples, s.n_live_tup FROM pg_class c "
    "LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid "
    "WHERE c.relname = ANY(%s) AND c.relkind IN ('r', 'p', 'm') AND pg_table_is_visible(c.oid)"
)


def _pg_sizes(
    connection: BaseDatabaseWrapper, tables: list[str], catalog: Catalog
) -> list[tuple[str, int | None, int | None]]:
    """(table, pg_total_relation_size, rows) of each table. Measuring a size takes an ACCESS SHARE
    lock, which waits behind a held or queued ACCESS EXCLUSIVE: with a 1 s lock timeout, the
    dry run falls back to the planner's page count instead of hanging."""
    try:
        with _short_lock_timeout(connection) as cursor:
            cursor.execute(_SIZES_SQL.format(size="pg_total_relation_size(c.oid)"), [tables])
            rows = cursor.fetchall()
    except Exception as exc:  # a lock timeout (55P03) or anything else: the estimate will do
        catalog.note = f"sizes estimated from pg_class.relpages ({type(exc).__name__})"
        with connection.cursor() as cursor:
            cursor.execute(
                _SIZES_SQL.format(size="c.relpages::bigint * current_setting('block_size')::int"),
                [tables],
            )
            rows = cursor.fetchall()
    result = []
    for table, size, reltuples, live in rows:
        # reltuples is -1 until the first VACUUM or ANALYZE: then the statistics' live rows.
        count = int(reltuples) if reltuples is not None and reltuples >= 0 else None
        if count is None and live is not None:
            count = int(live)
        result.append((str(table), int(size) if size is not None else None, count))
    return result


@contextlib.contextmanager
def _short_lock_timeout(connection: BaseDatabaseWrapper) -> Iterator[Any]:
    """A cursor in a transaction of its own with ``lock_timeout`` 1 s, rolled back after."""
    if connection.in_atomic_block:
        with connection.cursor() as cursor:
            cursor.execute("SAVEPOINT automigrate_forecast")
            cursor.execute("SET LOCAL lock_timeout = '1s'")
            try:
                yield cursor
            finally:
                cursor.execute("ROLLBACK TO SAVEPOINT automigrate_forecast")
        return
    autocommit = connection.get_autocommit()
    connection.set_autocommit(False)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL lock_timeout = '1s'")
            yield cursor
    finally:
        connection.rollback()
        connection.set_autocommit(autocommit)


def _not_null_check(definition: str) -> str:
    """``CHECK ((col IS NOT NULL))`` -> ``col``."""
    match = re.fullmatch(r'CHECK \(+"?([^"()\s]+)"? IS NOT NULL\)+', definition.strip())
    return match.group(1) if match else ""


def _mysql_catalog(connection: BaseDatabaseWrapper, names: list[str]) -> Catalog:
    catalog = Catalog(
        "mysql",
        version=tuple(getattr(connection, "mysql_version", ()) or ()),
        mariadb=bool(getattr(connection, "mysql_is_mariadb", False)),
    )
    if not names:
        return catalog
    marks = ", ".join(["%s"] * len(names))
    with connection.cursor() as cursor:
        cursor.execute("SELECT @@foreign_key_checks")
        catalog.foreign_key_checks = bool(int(cursor.fetchone()[0]))
        cursor.execute(
            "SELECT INDEX_NAME, TABLE_NAME, COLUMN_NAME, INDEX_TYPE "
            "FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() "
            f"AND (TABLE_NAME IN ({marks}) OR INDEX_NAME IN ({marks}))",
            [*names, *names],
        )
        index_rows = cursor.fetchall()
        tables = sorted({*names, *(str(row[1]) for row in index_rows)})
        tmarks = ", ".join(["%s"] * len(tables))
        cursor.execute(
            "SELECT c.CONSTRAINT_NAME, c.TABLE_NAME, c.CONSTRAINT_TYPE, "
            "COALESCE(k.COLUMN_NAME, ''), COALESCE(k.REFERENCED_TABLE_NAME, ''), "
            "COALESCE(k.REFERENCED_COLUMN_NAME, '') "
            "FROM information_schema.TABLE_CONSTRAINTS c "
            "LEFT JOIN information_schema.KEY_COLUMN_USAGE k "
            "ON k.CONSTRAINT_SCHEMA = c.CONSTRAINT_SCHEMA AND k.TABLE_NAME = c.TABLE_NAME "
            "AND k.CONSTRAINT_NAME = c.CONSTRAINT_NAME "
            "WHERE c.CONSTRAINT_SCHEMA = DATABASE() "
            f"AND (c.TABLE_NAME IN ({tmarks}) OR k.REFERENCED_TABLE_NAME IN ({tmarks}))",
            [*tables, *tables],
        )
        merged: dict[tuple[str, str], Constraint] = {}
        kinds = {"FOREIGN KEY": "f", "CHECK": "c", "UNIQUE": "u", "PRIMARY KEY": "p"}
        for name, table, kind, column, ref, ref_column in cursor.fetchall():
            key = (str(table), str(name))
            constraint = merged.setdefault(
                key,
                Constraint(str(name), str(table), kinds.get(str(kind), "?"), ref_table=str(ref)),
            )
            if column:
                constraint.columns += (str(column),)
            if ref_column:
                constraint.ref_columns += (str(ref_column),)
        cursor.execute(
            "SELECT CONSTRAINT_NAME, CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS "
            "WHERE CONSTRAINT_SCHEMA = DATABASE()"
        )
        clauses = {str(name): str(clause) for name, clause in cursor.fetchall()}
        for constraint in merged.values():
            if constraint.kind == "c":
                words = set(
                    re.findall(r"[A-Za-z_][A-Za-z0-9_$]*", clauses.get(constraint.name, ""))
                )
                constraint.columns = tuple(sorted(words))
        catalog.constraints = list(merged.values())
        tables = sorted({*tables} | {c.ref_table for c in catalog.constraints if c.ref_table})
        tmarks = ", ".join(["%s"] * len(tables))
        cursor.execute(
            "SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, CHARACTER_OCTET_LENGTH, "
            "CHARACTER_MAXIMUM_LENGTH FROM information_schema.COLUMNS "
            f"WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN ({tmarks})",
            tables,
        )
        columns: dict[str, dict[str, ColumnInfo]] = {}
        for table, column, type_, nullable, octets, chars in cursor.fetchall():
            per_char = int(octets) // int(chars) if octets and chars else None
            columns.setdefault(str(table), {})[str(column)] = ColumnInfo(
                type=str(type_),
                not_null=str(nullable) == "NO",
                octet_length=int(octets) if octets is not None else None,
                char_bytes=per_char,
            )
        cursor.execute(
            "SELECT TABLE_NAME, DATA_LENGTH + INDEX_LENGTH, TABLE_ROWS, COALESCE(ROW_FORMAT, '') "
            "FROM information_schema.TABLES "
            f"WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN ({tmarks})",
            tables,
        )
        for table, size, rows, row_format in cursor.fetchall():
            catalog.tables[str(table)] = TableInfo(
                int(size) if size is not None else None,
                int(rows) if rows is not None else None,
                columns.get(str(table), {}),
                row_format=str(row_format).upper(),
            )
    for index, table, column, index_type in index_rows:
        info = catalog.tables.get(str(table))
        if info is None:
            continue
        catalog.indexes[str(index)] = str(table)
        if str(index_type).upper() == "FULLTEXT":
            info.fulltext = True
        if str(column) in info.columns:
            info.columns[str(column)].indexed = True
    return catalog


def _sqlite_catalog(connection: BaseDatabaseWrapper, names: list[str]) -> Catalog:
    catalog = Catalog("sqlite")
    wanted = {name.lower() for name in names}
    with connection.cursor() as cursor:
        cursor.execute("SELECT type, name, tbl_name FROM sqlite_master")
        objects = [(str(t), str(n), str(tbl)) for t, n, tbl in cursor.fetchall()]
        sizes: dict[str, int] = {}
        with contextlib.suppress(Exception):  # dbstat is compiled in most builds, not all
            cursor.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name")
            sizes = {str(name).lower(): int(size) for name, size in cursor.fetchall()}
        counts: dict[str, int] = {}
        with contextlib.suppress(Exception):  # only after ANALYZE
            cursor.execute("SELECT tbl, stat FROM sqlite_stat1")
            for table, stat in cursor.fetchall():
                counts.setdefault(str(table).lower(), int(str(stat).split()[0]))
    for kind, name, table in objects:
        if kind == "index" and name.lower() in wanted:
            catalog.indexes[name.lower()] = table.lower()
    tables = {t.lower() for k, _, t in objects if k == "table"}
    for table in tables & (wanted | set(catalog.indexes.values())):
        parts = [n.lower() for k, n, t in objects if t.lower() == table]
        size = sum(sizes.get(part, 0) for part in parts) if sizes else None
        catalog.tables[table] = TableInfo(size, counts.get(table))
    return catalog


# --- tokens ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Token:
    #: word, ident (quoted), string, number, punct ( ) , ; . , op
    kind: str
    text: str
    value: str

    def word(self, *words: str) -> bool:
        return self.kind == "word" and self.value.upper() in words


_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
_NUMBER = re.compile(r"\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+")
_DOLLAR = re.compile(r"\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$")


def _tokenize(sql: str, vendor: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch.isspace():
            i += 1
        elif sql.startswith("--", i) or (ch == "#" and vendor == "mysql"):
            end = sql.find("\n", i)
            i = n if end < 0 else end + 1
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = n if end < 0 else end + 2
        elif ch == "'" or (ch in "eE" and sql.startswith("'", i + 1) and vendor == "postgresql"):
            start = i
            backslash = vendor == "mysql" or ch != "'"
            i += 1 if ch == "'" else 2
            while i < n:
                if backslash and sql[i] == "\\":
                    i += 2
                elif sql[i] == "'":
                    if sql.startswith("''", i):
                        i += 2
                    else:
                        i += 1
                        break
                else:
                    i += 1
            tokens.append(_Token("string", sql[start:i], sql[start:i]))
        elif ch == "$" and vendor == "postgresql" and (match := _DOLLAR.match(sql, i)):
            tag = match.group(0)
            end = sql.find(tag, match.end())
            stop = n if end < 0 else end + len(tag)
            tokens.append(_Token("string", sql[i:stop], sql[i:stop]))
            i = stop
        elif ch in '"`' or (ch == "[" and vendor == "sqlite"):
            close = "]" if ch == "[" else ch
            start, i, value = i, i + 1, []
            while i < n:
                if sql[i] == close:
                    if sql.startswith(close * 2, i) and close != "]":
                        value.append(close)
                        i += 2
                        continue
                    i += 1
                    break
                value.append(sql[i])
                i += 1
            kind = "string" if ch == '"' and vendor == "mysql" else "ident"
            tokens.append(_Token(kind, sql[start:i], "".join(value)))
        elif match := _WORD.match(sql, i):
            tokens.append(_Token("word", match.group(0), match.group(0)))
            i = match.end()
        elif match := _NUMBER.match(sql, i):
            tokens.append(_Token("number", match.group(0), match.group(0)))
            i = match.end()
        elif ch in "(),;.":
            tokens.append(_Token("punct", ch, ch))
            i += 1
        else:
            tokens.append(_Token("op", ch, ch))
            i += 1
    return tokens


def _split(tokens: Sequence[_Token], separator: str = ",") -> list[list[_Token]]:
    """``tokens`` cut at ``separator`` outside parentheses; empty parts dropped."""
    parts: list[list[_Token]] = [[]]
    depth = 0
    for token in tokens:
        if token.kind == "punct" and token.value == "(":
            depth += 1
        elif token.kind == "punct" and token.value == ")":
            depth -= 1
        elif token.kind == "punct" and token.value == separator and depth == 0:
            parts.append([])
            continue
        parts[-1].append(token)
    return [part for part in parts if part]


def identifiers(sql: str, vendor: str) -> set[str]:
    """Every name ``sql`` mentions (what the catalog is asked about)."""
    return {
        _normal(token, vendor)
        for token in _tokenize(sql, vendor)
        if token.kind in ("word", "ident")
    }


def _normal(token: _Token, vendor: str) -> str:
    # PostgreSQL folds unquoted names to lower case; SQLite compares them without case.
    if token.kind == "word" and vendor in ("postgresql", "sqlite"):
        return token.value.lower()
    return token.value.lower() if vendor == "sqlite" else token.value


class _Cursor:
    def __init__(self, tokens: Sequence[_Token], vendor: str) -> None:
        self.tokens = list(tokens)
        self.vendor = vendor
        self.i = 0

    def peek(self, offset: int = 0) -> _Token | None:
        index = self.i + offset
        return self.tokens[index] if index < len(self.tokens) else None

    def at(self, *words: str) -> bool:
        token = self.peek()
        return token is not None and token.word(*words)

    def accept(self, *sequence: str) -> bool:
        """Consume the words of ``sequence`` if they come next, in order."""
        for offset, word in enumerate(sequence):
            token = self.peek(offset)
            if token is None or not token.word(word):
                return False
        self.i += len(sequence)
        return True

    def accept_any(self, *words: str) -> str:
        token = self.peek()
        if token is not None and token.word(*words):
            self.i += 1
            return token.value.upper()
        return ""

    def at_punct(self, value: str) -> bool:
        token = self.peek()
        return token is not None and token.kind == "punct" and token.value == value

    def simple_name(self) -> str | None:
        token = self.peek()
        if token is None or token.kind not in ("word", "ident"):
            return None
        self.i += 1
        return _normal(token, self.vendor)

    def name_parts(self) -> list[str]:
        parts: list[str] = []
        while (part := self.simple_name()) is not None:
            parts.append(part)
            if not self.at_punct("."):
                break
            self.i += 1
        return parts

    def name(self) -> str | None:
        """A possibly qualified name: its last part (the search path finds the rest)."""
        parts = self.name_parts()
        return parts[-1] if parts else None

    def parens(self) -> list[_Token] | None:
        """The tokens inside the parenthesis that comes next, consumed with it."""
        if not self.at_punct("("):
            return None
        depth, start = 0, self.i
        while self.i < len(self.tokens):
            token = self.tokens[self.i]
            self.i += 1
            if token.kind == "punct" and token.value == "(":
                depth += 1
            elif token.kind == "punct" and token.value == ")":
                depth -= 1
                if depth == 0:
                    return self.tokens[start + 1 : self.i - 1]
        return self.tokens[start + 1 :]

    def rest(self) -> list[_Token]:
        tokens = self.tokens[self.i :]
        self.i = len(self.tokens)
        return tokens

    def done(self) -> bool:
        return self.i >= len(self.tokens)


def _words(tokens: Sequence[_Token]) -> list[str]:
    return [t.value.upper() for t in tokens if t.kind == "word"]


def _top_words(tokens: Sequence[_Token]) -> list[str]:
    """The words outside any parenthesis."""
    words, depth = [], 0
    for token in tokens:
        if token.kind == "punct" and token.value == "(":
            depth += 1
        elif token.kind == "punct" and token.value == ")":
            depth -= 1
        elif depth == 0 and token.kind == "word":
            words.append(token.value.upper())
    return words


def _has_sequence(words: Sequence[str], *sequence: str) -> bool:
    return any(
        tuple(words[i : i + len(sequence)]) == sequence
        for i in range(len(words) - len(sequence) + 1)
    )


def _text(tokens: Sequence[_Token]) -> str:
    return " ".join(token.text for token in tokens)


# --- the schema as the plan changes it ---------------------------------------------------------


@dataclasses.dataclass
class _Table:
    name: str
    #: The catalog row whose rows it holds; None for a table the plan created (empty).
    info: TableInfo | None
    columns: dict[str, ColumnInfo]


class _Schema:
    """The catalog, changed statement by statement as the plan would change it: tables the plan
    creates are empty (free), renamed ones keep their rows, dropped ones are gone."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.tables = {
            name: _Table(name, info, {k: dataclasses.replace(v) for k, v in info.columns.items()})
            for name, info in catalog.tables.items()
        }
        self.indexes = dict(catalog.indexes)
        self.constraints = [dataclasses.replace(c) for c in catalog.constraints]

    def table(self, name: str) -> _Table | None:
        return self.tables.get(name)

    def column(self, table: str, column: str) -> ColumnInfo | None:
        found = self.tables.get(table)
        return found.columns.get(column) if found else None

    def create(self, name: str) -> _Table:
        self.tables[name] = table = _Table(name, None, {})
        return table

    def drop(self, name: str) -> None:
        self.tables.pop(name, None)
        self.indexes = {i: t for i, t in self.indexes.items() if t != name}
        self.constraints = [c for c in self.constraints if name not in (c.table, c.ref_table)]

    def rename(self, old: str, new: str) -> None:
        table = self.tables.pop(old, None)
        if table is not None:
            table.name = new
            self.tables[new] = table
        self.indexes = {i: (new if t == old else t) for i, t in self.indexes.items()}
        for constraint in self.constraints:
            if constraint.table == old:
                constraint.table = new
            if constraint.ref_table == old:
                constraint.ref_table = new

    def constraint(self, table: str, name: str) -> Constraint | None:
        for constraint in self.constraints:
            if constraint.name == name and constraint.table == table:
                return constraint
        return None

    def remove_constraint(self, constraint: Constraint) -> None:
        self.constraints = [c for c in self.constraints if c is not constraint]
        if constraint.kind in ("u", "p", "x"):
            self.indexes.pop(constraint.name, None)

    def foreign_keys_from(self, table: str, column: str | None = None) -> list[Constraint]:
        return [
            c
            for c in self.constraints
            if c.kind == "f" and c.table == table and (column is None or column in c.columns)
        ]

    def foreign_keys_to(self, table: str, column: str | None = None) -> list[Constraint]:
        return [
            c
            for c in self.constraints
            if c.kind == "f"
            and c.ref_table == table
            and c.table != table
            and (column is None or column in c.ref_columns or not c.ref_columns)
        ]

    def checks_on(self, table: str, column: str) -> list[Constraint]:
        return [
            c
            for c in self.constraints
            if c.kind == "c" and c.table == table and column in c.columns
        ]


# --- judging one statement ---------------------------------------------------------------------


@dataclasses.dataclass
class _Judgement:
    action: str
    tables: list[TableForecast] = dataclasses.field(default_factory=list)
    #: Why it cannot be judged ("" when it can).
    unknown: str = ""
    #: A fact worth saying (an index it cannot find, a default it assumes volatile...).
    note: str = ""
    #: The verdict when it touches no table (ALTER SEQUENCE: inserts wait).
    bare_verdict: str = SAFE
    #: What to say of a statement that locks no table (said only when nothing else is).
    summary: str = ""


class _Judge:
    """Judges the statements of a plan in order against the schema they change."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.vendor = catalog.vendor
        self.schema = _Schema(catalog)

    # helpers

    def effect(
        self,
        judgement: _Judgement,
        table: str,
        lock: str,
        *,
        algorithm: str | None = None,
        rewrites: bool = False,
        scans: bool = False,
        work: str = "",
        row_locks: bool = False,
    ) -> None:
        """Note a lock on ``table``, merged with what the statement already takes on it."""
        found = self.schema.table(table)
        info = found.info if found else None
        if rewrites:
            scans, work = True, "rewrite"
        for existing in judgement.tables:
            if existing.table == table:
                existing.lock = self._stronger(existing.lock, lock)
                existing.algorithm = _max_algorithm(existing.algorithm, algorithm)
                existing.rewrites |= rewrites
                existing.scans |= scans
                existing.row_locks |= row_locks
                existing.work = max(existing.work, work, key=_WORK_ORDER.index)
                return
        judgement.tables.append(
            TableForecast(
                table=table,
                exists=info is not None,
                lock=lock,
                algorithm=algorithm,
                rewrites=rewrites,
                scans=scans,
                row_locks=row_locks,
                size_bytes=info.size_bytes if info else None,
                rows=info.rows if info else None,
                work=work,
            )
        )

    def _stronger(self, a: str, b: str) -> str:
        if self.vendor == "postgresql" and a in PG_MODES and b in PG_MODES:
            return a if PG_MODES.index(a) >= PG_MODES.index(b) else b
        if a in _MYSQL_LOCKS and b in _MYSQL_LOCKS:
            return a if _MYSQL_LOCKS.index(a) >= _MYSQL_LOCKS.index(b) else b
        return a

    def judge(self, tokens: list[_Token]) -> _Judgement:
        cursor = _Cursor(tokens, self.vendor)
        head = " ".join(_words(tokens[:3]))
        try:
            if self.vendor == "postgresql":
                return self._postgresql(cursor)
            if self.vendor == "mysql":
                return self._mysql(cursor)
            if self.vendor == "sqlite":
                return self._sqlite(cursor)
        except _CannotJudge as exc:
            return _Judgement(head or "statement", unknown=str(exc))
        return _Judgement(head, unknown=f"no lock rules for the {self.vendor} backend")

    # PostgreSQL

    def _postgresql(self, c: _Cursor) -> _Judgement:
        if c.accept("ALTER", "TABLE"):
            return self._pg_alter_table(c)
        if c.at("CREATE"):
            return self._pg_create(c)
        if c.at("DROP"):
            return self._pg_drop(c)
        if c.accept("ALTER", "INDEX"):
            c.accept("IF", "EXISTS")
            index = c.name()
            if index and c.accept("RENAME", "TO") and (new := c.name()):
                if index in self.schema.indexes:
                    self.schema.indexes[new] = self.schema.indexes.pop(index)
                # Since PostgreSQL 12 a rename takes SHARE UPDATE EXCLUSIVE on the index alone.
                return _Judgement("RENAME INDEX", note="locks the index only")
            raise _CannotJudge("ALTER INDEX other than RENAME")
        if c.accept("ALTER", "SEQUENCE"):
            c.accept("IF", "EXISTS")
            return _Judgement(
                "ALTER SEQUENCE",
                note=f"locks sequence {c.name()}: inserts that draw from it wait",
                bare_verdict=BRIEF_LOCK,
            )
        if c.at("ALTER"):
            return _Judgement(" ".join(_words(c.tokens[:2])), summary="locks no table")
        if c.accept("COMMENT", "ON"):
            return self._pg_comment(c)
        if c.at("INSERT", "UPDATE", "DELETE"):
            return self._dml(c, "RowExclusiveLock", "AccessShareLock")
        if c.accept("TRUNCATE"):
            c.accept("TABLE")
            j = _Judgement("TRUNCATE", note="empties the table")
            for part in _split(c.rest()):
                name = _Cursor(part, self.vendor)
                name.accept("ONLY")
                if table := name.name():
                    self.effect(j, table, "AccessExclusiveLock")
            return j
        if c.accept("LOCK"):
            c.accept("TABLE")
            words = _top_words(c.tokens)
            mode = "AccessExclusiveLock"
            if "IN" in words and "MODE" in words:
                spelled = "".join(
                    w.title() for w in words[words.index("IN") + 1 : words.index("MODE")]
                )
                mode = f"{spelled}Lock" if f"{spelled}Lock" in PG_MODES else mode
            j = _Judgement("LOCK TABLE")
            for part in _split(c.tokens[c.i :]):
                name = _Cursor(part, self.vendor)
                name.accept("ONLY")
                if table := name.name():
                    self.effect(j, table, mode)
            return j
        if c.at("SELECT", "VALUES", "SHOW", "TABLE") or (
            c.at("WITH") and not {"INSERT", "UPDATE", "DELETE"} & set(_words(c.tokens))
        ):
            return _Judgement(
                "SELECT", summary="reads only (the functions it calls are not judged)"
            )
        if c.at(
            "SET",
            "RESET",
            "BEGIN",
            "START",
            "COMMIT",
            "END",
            "SAVEPOINT",
            "RELEASE",
            "ROLLBACK",
            "GRANT",
            "REVOKE",
            "NOTIFY",
            "LISTEN",
            "DISCARD",
        ):
            return _Judgement(" ".join(_words(c.tokens[:2])), summary="locks no table")
        if c.accept("VACUUM"):
            return self._pg_vacuum(c)
        if c.accept("ANALYZE") or c.accept("ANALYSE"):
            j = _Judgement("ANALYZE")
            for part in _split(c.rest()):
                if table := _Cursor(part, self.vendor).name():
                    self.effect(j, table, "ShareUpdateExclusiveLock")
            return j
        if c.accept("REINDEX"):
            return self._pg_reindex(c)
        if c.accept("CLUSTER"):
            j = _Judgement("CLUSTER")
            if table := c.name():
                self.effect(j, table, "AccessExclusiveLock", rewrites=True)
                return j
            raise _CannotJudge("CLUSTER of every clustered table")
        raise _CannotJudge(f"cannot judge {' '.join(_words(c.tokens[:2])) or 'this SQL'}")

    def _pg_alter_table(self, c: _Cursor) -> _Judgement:
        c.accept("IF", "EXISTS")
        c.accept("ONLY")
        table = c.name()
        if table is None:
            raise _CannotJudge("ALTER TABLE without a table name")
        token = c.peek()
        if token is not None and token.kind == "op" and token.value == "*":
            c.i += 1
        j = _Judgement("ALTER TABLE")
        actions = []
        for part in _split(c.rest()):
            actions.append(self._pg_subcommand(j, table, _Cursor(part, self.vendor)))
        j.action = " + ".join(dict.fromkeys(actions)) or "ALTER TABLE"
        return j

    def _pg_subcommand(self, j: _Judgement, table: str, c: _Cursor) -> str:
        ael = "AccessExclusiveLock"
        if c.accept("ADD"):
            if c.at("CONSTRAINT", "CHECK", "UNIQUE", "PRIMARY", "FOREIGN", "EXCLUDE"):
                return self._pg_add_constraint(j, table, c)
            c.accept("COLUMN")
            c.accept("IF", "NOT", "EXISTS")
            return self._pg_add_column(j, table, c)
        if c.accept("DROP"):
            if c.accept("CONSTRAINT"):
                c.accept("IF", "EXISTS")
                return self._pg_drop_constraint(j, table, c)
            c.accept("COLUMN")
            c.accept("IF", "EXISTS")
            return self._pg_drop_column(j, table, c)
        if c.accept("ALTER"):
            if c.accept("CONSTRAINT"):
                self.effect(j, table, ael)
                return "ALTER CONSTRAINT"
            c.accept("COLUMN")
            column = c.simple_name()
            if column is None:
                raise _CannotJudge("ALTER COLUMN without a column")
            return self._pg_alter_column(j, table, column, c)
        if c.accept("VALIDATE", "CONSTRAINT"):
            return self._pg_validate(j, table, c)
        if c.accept("RENAME"):
            if c.accept("TO"):
                new = c.name()
                self.effect(j, table, ael)
                if new:
                    self.schema.rename(table, new)
                return "RENAME TO"
            if c.accept("CONSTRAINT"):
                old, _, new = c.simple_name(), c.accept("TO"), c.simple_name()
                self.effect(j, table, ael)
                found = self.schema.constraint(table, old or "")
                if found and new:
                    if found.kind in ("u", "p", "x") and found.name in self.schema.indexes:
                        self.schema.indexes[new] = self.schema.indexes.pop(found.name)
                    found.name = new
                return "RENAME CONSTRAINT"
            c.accept("COLUMN")
            old, _, new = c.simple_name(), c.accept("TO"), c.simple_name()
            self.effect(j, table, ael)
            self._rename_column(table, old or "", new or "")
            return "RENAME COLUMN"
        if c.accept("SET"):
            if c.at_punct("("):
                return self._pg_storage_parameters(j, table, c.parens() or [])
            if c.accept("WITHOUT", "CLUSTER"):
                self.effect(j, table, "ShareUpdateExclusiveLock")
                return "SET WITHOUT CLUSTER"
            if c.at("TABLESPACE", "LOGGED", "UNLOGGED", "ACCESS"):
                word = c.accept_any("TABLESPACE", "LOGGED", "UNLOGGED", "ACCESS")
                self.effect(j, table, ael, rewrites=True)
                return f"SET {word}"
            word = c.accept_any("SCHEMA", "WITHOUT")
            self.effect(j, table, ael)
            return f"SET {word}".strip()
        if c.accept("RESET"):
            return self._pg_storage_parameters(j, table, c.parens() or [])
        if c.accept("CLUSTER", "ON"):
            self.effect(j, table, "ShareUpdateExclusiveLock")
            return "CLUSTER ON"
        if c.at("ENABLE", "DISABLE"):
            word = c.accept_any("ENABLE", "DISABLE")
            c.accept_any("REPLICA", "ALWAYS")
            if c.at("TRIGGER"):
                self.effect(j, table, "ShareRowExclusiveLock")
                return f"{word} TRIGGER"
            self.effect(j, table, ael)
            return f"{word} {c.accept_any('RULE', 'ROW') or ''}".strip()
        if c.at("OWNER", "REPLICA", "INHERIT", "NO", "OF", "NOT", "FORCE"):
            self.effect(j, table, ael)
            return " ".join(_words(c.tokens[:2]))
        raise _CannotJudge(f"cannot judge ALTER TABLE ... {' '.join(_words(c.tokens[:2]))}")

    def _pg_add_column(self, j: _Judgement, table: str, c: _Cursor) -> str:
        column = c.simple_name()
        if column is None:
            raise _CannotJudge("ADD COLUMN without a column")
        definition = _column_definition(c.rest(), _PG_CLAUSES)
        rewrites, note = False, ""
        if definition.type.split("(")[0].strip().lower() in _PG_SERIALS:
            rewrites = True  # each row gets its own nextval()
        if definition.generated:
            rewrites = True  # identity or stored generated: every row gets a value
        if definition.default and not _is_null(definition.default):
            volatile, assumed = _pg_volatile(definition.default)
            if volatile:
                rewrites = True
                note = assumed
        non_null_default = bool(definition.default) and not _is_null(definition.default)
        # Scans without a rewrite: an inline CHECK, a UNIQUE/PRIMARY KEY index, a NOT NULL with
        # no value to fill it, or a REFERENCES whose default must be checked.
        index = definition.unique or definition.primary
        scans = (
            bool(definition.check)
            or index
            or (definition.not_null and not non_null_default and not definition.generated)
            or (bool(definition.references) and non_null_default)
        )
        self.effect(
            j,
            table,
            "AccessExclusiveLock",
            rewrites=rewrites,
            scans=scans,
            work="index" if index else ("scan" if scans else ""),
        )
        if definition.references:
            ref_table, ref_columns = definition.references
            self.effect(j, ref_table, "ShareRowExclusiveLock", scans=non_null_default)
            self.schema.constraints.append(
                Constraint(
                    definition.constraint_name or f"{table}_{column}_fkey",
                    table,
                    "f",
                    (column,),
                    ref_table,
                    ref_columns,
                )
            )
        found = self.schema.table(table)
        if found is not None:
            found.columns[column] = ColumnInfo(
                definition.type, definition.not_null or definition.primary
            )
        if definition.check:
            self._add_check(
                table,
                definition.constraint_name or f"{table}_{column}_check",
                definition.check,
                valid=True,
            )
        if index:
            suffix = "pkey" if definition.primary else f"{column}_key"
            self.schema.indexes[definition.constraint_name or f"{table}_{suffix}"] = table
        if note:
            j.note = note
        return "ADD COLUMN"

    def _pg_add_constraint(self, j: _Judgement, table: str, c: _Cursor) -> str:
        name = c.simple_name() if c.accept("CONSTRAINT") else None
        words = _top_words(c.tokens[c.i :])
        not_valid = _has_sequence(words, "NOT", "VALID")
        if c.accept("CHECK"):
            expression = c.parens() or []
            self.effect(j, table, "AccessExclusiveLock", scans=not not_valid, work="scan")
            self._add_check(table, name or f"{table}_check", expression, valid=not not_valid)
            return "ADD CHECK" + (" NOT VALID" if not_valid else "")
        if c.at("UNIQUE", "PRIMARY"):
            primary = c.accept_any("UNIQUE", "PRIMARY") == "PRIMARY"
            c.accept("KEY")
            if c.accept("USING", "INDEX"):
                index = c.name()
                self.effect(j, table, "AccessExclusiveLock")
                if index and name:
                    self.schema.indexes[name] = self.schema.indexes.pop(index, table)
                return "ADD CONSTRAINT USING INDEX"
            columns = tuple(_names(c.parens() or [], self.vendor))
            self.effect(j, table, "AccessExclusiveLock", scans=True, work="index")
            kind = "p" if primary else "u"
            index = name or (f"{table}_pkey" if primary else f"{table}_{'_'.join(columns)}_key")
            self.schema.indexes[index] = table
            self.schema.constraints.append(Constraint(index, table, kind, columns))
            return "ADD PRIMARY KEY" if primary else "ADD UNIQUE"
        if c.accept("FOREIGN", "KEY"):
            columns = tuple(_names(c.parens() or [], self.vendor))
            if not c.accept("REFERENCES"):
                raise _CannotJudge("FOREIGN KEY without REFERENCES")
            ref_table = c.name() or ""
            ref_columns = tuple(_names(c.parens() or [], self.vendor))
            self.effect(j, table, "ShareRowExclusiveLock", scans=not not_valid, work="scan")
            # Validation reads the referenced table too (the planner joins both), under SHARE
            # ROW EXCLUSIVE: its writes wait.
            self.effect(j, ref_table, "ShareRowExclusiveLock", scans=not not_valid, work="scan")
            self.schema.constraints.append(
                Constraint(
                    name or f"{table}_{'_'.join(columns)}_fkey",
                    table,
                    "f",
                    columns,
                    ref_table,
                    ref_columns,
                    valid=not not_valid,
                )
            )
            return "ADD FOREIGN KEY" + (" NOT VALID" if not_valid else "")
        if c.accept("EXCLUDE"):
            self.effect(j, table, "AccessExclusiveLock", scans=True, work="index")
            if name:
                self.schema.indexes[name] = table
            return "ADD EXCLUDE"
        raise _CannotJudge("cannot judge this ADD CONSTRAINT")

    def _add_check(
        self, table: str, name: str, expression: Sequence[_Token], *, valid: bool
    ) -> None:
        columns = tuple(
            sorted({_normal(t, self.vendor) for t in expression if t.kind in ("word", "ident")})
        )
        inner = [t for t in expression if not (t.kind == "punct" and t.value in "()")]
        not_null_of = ""
        if (
            len(inner) == 4
            and inner[0].kind in ("word", "ident")
            and _words(inner[1:]) == ["IS", "NOT", "NULL"]
        ):
            not_null_of = _normal(inner[0], self.vendor)
        self.schema.constraints.append(
            Constraint(name, table, "c", columns, valid=valid, not_null_of=not_null_of)
        )

    def _pg_drop_constraint(self, j: _Judgement, table: str, c: _Cursor) -> str:
        name = c.simple_name() or ""
        cascade = "CASCADE" in _top_words(c.rest())
        self.effect(j, table, "AccessExclusiveLock")
        found = self.schema.constraint(table, name)
        if found is None:
            j.note = f"constraint {name} not found in the catalog"
            return "DROP CONSTRAINT"
        if found.kind == "f" and found.ref_table and found.ref_table != table:
            # Its triggers on the referenced table go with it.
            self.effect(j, found.ref_table, "AccessExclusiveLock")
        if found.kind in ("u", "p") and cascade:
            for other in self.schema.foreign_keys_to(table):
                if set(other.ref_columns) <= set(found.columns):
                    self.effect(j, other.table, "AccessExclusiveLock")
                    self.schema.remove_constraint(other)
        self.schema.remove_constraint(found)
        return "DROP CONSTRAINT"

    def _pg_drop_column(self, j: _Judgement, table: str, c: _Cursor) -> str:
        column = c.simple_name() or ""
        self.effect(j, table, "AccessExclusiveLock")
        for fk in self.schema.foreign_keys_from(table, column):
            if fk.ref_table != table:
                self.effect(j, fk.ref_table, "AccessExclusiveLock")
            self.schema.remove_constraint(fk)
        for fk in self.schema.foreign_keys_to(table, column):  # CASCADE drops them
            self.effect(j, fk.table, "AccessExclusiveLock")
            self.schema.remove_constraint(fk)
        for check in self.schema.checks_on(table, column):
            self.schema.remove_constraint(check)
        found = self.schema.table(table)
        if found is not None:
            found.columns.pop(column, None)
        return "DROP COLUMN"

    def _pg_alter_column(self, j: _Judgement, table: str, column: str, c: _Cursor) -> str:
        ael = "AccessExclusiveLock"
        info = self.schema.column(table, column)
        if c.accept("SET", "DATA", "TYPE") or c.accept("TYPE"):
            rest = c.rest()
            words = _top_words(rest)
            using: list[_Token] = []
            type_tokens = list(rest)
            for index, token in enumerate(rest):
                if token.word("USING", "COLLATE"):
                    type_tokens = rest[:index]
                    if "USING" in words:
                        using = rest[[t.word("USING") for t in rest].index(True) + 1 :]
                    break
            new_type = _text(type_tokens)
            rewrites, reason = _pg_type_rewrites(
                info.type if info else None, new_type, using, column, self.catalog.utc, self.vendor
            )
            checks = self.schema.checks_on(table, column)
            # Without a rewrite, PostgreSQL still re-checks the column's CHECK constraints.
            self.effect(j, table, ael, rewrites=rewrites, scans=bool(checks), work="scan")
            # Foreign keys on the column are rebuilt: both tables are locked, and re-checked when
            # the values were rewritten.
            for fk in self.schema.foreign_keys_from(table, column):
                if fk.ref_table != table:
                    self.effect(j, fk.ref_table, ael, scans=rewrites, work="scan")
            for fk in self.schema.foreign_keys_to(table, column):
                self.effect(j, fk.table, ael, scans=rewrites, work="scan")
            if info is not None:
                info.type = new_type
            if reason:
                j.note = reason
            return "ALTER COLUMN TYPE"
        if c.accept("SET", "NOT", "NULL"):
            proven = any(
                check.valid and check.not_null_of == column
                for check in self.schema.constraints
                if check.table == table and check.kind == "c"
            )
            already = info is not None and info.not_null
            self.effect(j, table, ael, scans=not (proven or already), work="scan")
            if proven:
                j.note = "a valid CHECK (... IS NOT NULL) spares the scan"
            if info is not None:
                info.not_null = True
            return "SET NOT NULL"
        if c.accept("DROP", "NOT", "NULL"):
            self.effect(j, table, ael)
            if info is not None:
                info.not_null = False
            return "DROP NOT NULL"
        if c.accept("SET", "DEFAULT") or c.accept("DROP", "DEFAULT"):
            self.effect(j, table, ael)
            return "SET/DROP DEFAULT"
        following = c.peek(1)
        if (
            c.at("SET")
            and following is not None
            and (
                following.word("STATISTICS")
                or (following.kind == "punct" and following.value == "(")
            )
        ) or c.at("RESET"):
            self.effect(j, table, "ShareUpdateExclusiveLock")
            return (
                "SET STATISTICS"
                if following is not None and following.word("STATISTICS")
                else "SET (attribute)"
            )
        if c.at("SET", "ADD", "DROP", "RESTART"):
            # Storage, compression, identity (ADD/SET GENERATED, RESTART, DROP IDENTITY) and
            # DROP EXPRESSION: catalog changes under ACCESS EXCLUSIVE, no row is touched.
            words = _words(c.tokens[c.i : c.i + 2])
            self.effect(j, table, ael)
            return " ".join(words)
        raise _CannotJudge(
            f"cannot judge ALTER COLUMN ... {' '.join(_words(c.tokens[c.i : c.i + 2]))}"
        )

    def _pg_validate(self, j: _Judgement, table: str, c: _Cursor) -> str:
        name = c.simple_name() or ""
        found = self.schema.constraint(table, name)
        needed = found is None or not found.valid
        self.effect(j, table, "ShareUpdateExclusiveLock", scans=needed, work="scan")
        if found is not None and found.kind == "f" and found.ref_table != table and needed:
            self.effect(j, found.ref_table, "RowShareLock", scans=True, work="scan")
        if found is None:
            j.note = f"constraint {name} not found: assumed not valid yet"
        else:
            found.valid = True
        return "VALIDATE CONSTRAINT"

    def _pg_storage_parameters(self, j: _Judgement, table: str, tokens: list[_Token]) -> str:
        names = [_text(part).split("=")[0].replace(" ", "").lower() for part in _split(tokens)]
        weak = all(
            name.removeprefix("toast.").startswith(("autovacuum_", "vacuum_"))
            or name.removeprefix("toast.") in _PG_WEAK_PARAMETERS
            for name in names
        )
        self.effect(j, table, "ShareUpdateExclusiveLock" if weak else "AccessExclusiveLock")
        return "SET (storage parameters)"

    def _rename_column(self, table: str, old: str, new: str) -> None:
        found = self.schema.table(table)
        if found is not None and old in found.columns:
            found.columns[new] = found.columns.pop(old)
        for constraint in self.schema.constraints:
            if constraint.table == table:
                constraint.columns = tuple(new if x == old else x for x in constraint.columns)
                if constraint.not_null_of == old:
                    constraint.not_null_of = new
            if constraint.ref_table == table:
                constraint.ref_columns = tuple(
                    new if x == old else x for x in constraint.ref_columns
                )

    def _pg_create(self, c: _Cursor) -> _Judgement:
        c.accept("CREATE")
        c.accept("OR", "REPLACE")
        unique = c.accept("UNIQUE")
        if c.accept("INDEX"):
            concurrently = c.accept("CONCURRENTLY")
            c.accept("IF", "NOT", "EXISTS")
            name = None if c.at("ON") else c.name()
            if not c.accept("ON"):
                raise _CannotJudge("CREATE INDEX without ON")
            c.accept("ONLY")
            table = c.name() or ""
            action = f"CREATE {'UNIQUE ' if unique else ''}INDEX" + (
                " CONCURRENTLY" if concurrently else ""
            )
            j = _Judgement(action)
            lock = "ShareUpdateExclusiveLock" if concurrently else "ShareLock"
            self.effect(j, table, lock, scans=True, work="index")
            if concurrently:
                j.note = "waits for the transactions that hold conflicting locks on the table"
            if name:
                self.schema.indexes[name] = table
            return j
        c.accept_any("GLOBAL", "LOCAL")
        c.accept_any("TEMPORARY", "TEMP", "UNLOGGED")
        if c.accept("TABLE"):
            return self._create_table(c, postgresql=True)
        if c.at("TRIGGER", "CONSTRAINT"):
            c.accept("CONSTRAINT")
            c.accept("TRIGGER")
            return self._on_table(c, "CREATE TRIGGER", "ShareRowExclusiveLock")
        if c.accept("RULE"):
            return self._on_table(c, "CREATE RULE", "AccessExclusiveLock", keyword="TO")
        if c.accept("POLICY"):
            return self._on_table(c, "CREATE POLICY", "AccessExclusiveLock")
        if c.accept("STATISTICS"):
            return self._on_table(
                c, "CREATE STATISTICS", "ShareUpdateExclusiveLock", keyword="FROM"
            )
        if c.at("MATERIALIZED"):
            return _Judgement("CREATE MATERIALIZED VIEW", note="reads the tables of its query")
        word = " ".join(_words(c.tokens[c.i : c.i + 1]))
        return _Judgement(f"CREATE {word}".strip(), summary="creates no table: locks none")

    def _on_table(self, c: _Cursor, action: str, lock: str, *, keyword: str = "ON") -> _Judgement:
        """``... ON table`` (a trigger, a rule, a policy): ``lock`` on that table."""
        tokens = c.tokens
        for index in range(c.i, len(tokens)):
            if tokens[index].word(keyword):
                rest = _Cursor(tokens[index + 1 :], self.vendor)
                rest.accept("ONLY")
                if table := rest.name():
                    j = _Judgement(action)
                    self.effect(j, table, lock)
                    return j
        raise _CannotJudge(f"{action} without its table")

    def _create_table(self, c: _Cursor, *, postgresql: bool) -> _Judgement:
        c.accept("IF", "NOT", "EXISTS")
        table = c.name()
        if table is None:
            raise _CannotJudge("CREATE TABLE without a name")
        if self.schema.table(table) is not None:
            return _Judgement("CREATE TABLE", note="the table exists already")
        if c.at("AS", "PARTITION", "OF") and postgresql:
            if c.at("AS"):
                self.schema.create(table)
                return _Judgement("CREATE TABLE AS", note="reads the tables of its query")
            raise _CannotJudge("CREATE TABLE ... PARTITION OF")
        body = c.parens()
        self.schema.create(table)
        j = _Judgement("CREATE TABLE")
        if postgresql:
            self.effect(j, table, "AccessExclusiveLock")
        elif self.vendor == "sqlite":
            self.effect(j, table, SQLITE_LOCK)
        else:
            self.effect(j, table, "NONE")
        found = self.schema.table(table)
        assert found is not None
        indexed = False
        for element in _split(body or []):
            e = _Cursor(element, self.vendor)
            if e.at("LIKE"):
                e.accept("LIKE")
                if (source := e.name()) and postgresql:
                    self.effect(j, source, "AccessShareLock")
                continue
            constraint_name = e.simple_name() if e.accept("CONSTRAINT") else None
            if e.at("PRIMARY", "UNIQUE", "EXCLUDE"):
                indexed = True
                continue
            if e.at("CHECK", "KEY", "INDEX"):
                continue
            if e.accept("FOREIGN", "KEY"):
                columns = tuple(_names(e.parens() or [], self.vendor))
                if e.accept("REFERENCES") and (ref := e.name()):
                    self._reference(
                        j,
                        table,
                        constraint_name,
                        columns,
                        ref,
                        tuple(_names(e.parens() or [], self.vendor)),
                        postgresql,
                    )
                continue
            column = e.simple_name()
            if column is None:
                continue
            definition = _column_definition(e.rest(), _PG_CLAUSES if postgresql else _MYSQL_CLAUSES)
            found.columns[column] = ColumnInfo(
                definition.type, definition.not_null or definition.primary
            )
            indexed |= definition.primary or definition.unique
            if definition.references:
                ref, ref_columns = definition.references
                self._reference(
                    j, table, definition.constraint_name, (column,), ref, ref_columns, postgresql
                )
        if indexed and postgresql:
            # Its primary key or unique index is built by reading the (empty) table.
            self.effect(j, table, "AccessExclusiveLock", scans=True, work="index")
        return j

    def _reference(
        self,
        j: _Judgement,
        table: str,
        name: str | None,
        columns: tuple[str, ...],
        ref: str,
        ref_columns: tuple[str, ...],
        postgresql: bool,
    ) -> None:
        if postgresql:
            # The new table is empty: nothing to check, but the referenced table gets triggers.
            self.effect(j, ref, "ShareRowExclusiveLock")
        self.schema.constraints.append(
            Constraint(
                name or f"{table}_{'_'.join(columns)}_fkey", table, "f", columns, ref, ref_columns
            )
        )

    def _pg_drop(self, c: _Cursor) -> _Judgement:
        c.accept("DROP")
        if c.accept("TABLE"):
            return self._drop_tables(c, "AccessExclusiveLock")
        if c.accept("INDEX"):
            concurrently = c.accept("CONCURRENTLY")
            if_exists = c.accept("IF", "EXISTS")
            j = _Judgement("DROP INDEX" + (" CONCURRENTLY" if concurrently else ""))
            for part in _split(c.rest()):
                index = _Cursor(part, self.vendor).name() or ""
                table = self.schema.indexes.pop(index, None)
                if table is None:
                    j.note = f"index {index} not found" + (": nothing to drop" if if_exists else "")
                    continue
                lock = "ShareUpdateExclusiveLock" if concurrently else "AccessExclusiveLock"
                self.effect(j, table, lock)
            return j
        if c.accept("TRIGGER"):
            c.accept("IF", "EXISTS")
            return self._on_table(c, "DROP TRIGGER", "AccessExclusiveLock")
        if c.accept("RULE") or c.accept("POLICY"):
            c.accept("IF", "EXISTS")
            return self._on_table(c, "DROP " + _words(c.tokens[1:2])[0], "AccessExclusiveLock")
        word = " ".join(_words(c.tokens[1:2]))
        if "CASCADE" in _top_words(c.tokens) and word != "FUNCTION":
            raise _CannotJudge(f"DROP {word} ... CASCADE may drop columns or defaults of tables")
        return _Judgement(f"DROP {word}".strip(), summary="drops no table: locks none")

    def _drop_tables(self, c: _Cursor, lock: str) -> _Judgement:
        c.accept("IF", "EXISTS")
        j = _Judgement("DROP TABLE")
        names = [
            name
            for part in _split(c.rest())
            if (name := _Cursor(part, self.vendor).name()) is not None
        ]
        for name in names:
            self.effect(j, name, lock)
        if self.vendor == "postgresql":
            for name in names:
                # Its foreign keys' triggers on the tables it references go, and so do the
                # foreign keys of the tables that reference it (CASCADE).
                for fk in self.schema.foreign_keys_from(name):
                    if fk.ref_table not in names:
                        self.effect(j, fk.ref_table, lock)
                for fk in self.schema.foreign_keys_to(name):
                    if fk.table not in names:
                        self.effect(j, fk.table, lock)
        for name in names:
            self.schema.drop(name)
        return j

    def _pg_comment(self, c: _Cursor) -> _Judgement:
        kind = c.accept_any("TABLE", "COLUMN", "INDEX", "CONSTRAINT")
        if kind == "TABLE":
            table = c.name()
        elif kind == "COLUMN":
            parts = c.name_parts()
            table = parts[-2] if len(parts) >= 2 else None
        elif kind == "CONSTRAINT":
            c.simple_name()
            table = c.name() if c.accept("ON") else None
        else:
            return _Judgement("COMMENT", summary="locks no table")
        j = _Judgement(f"COMMENT ON {kind}")
        if table:
            self.effect(j, table, "ShareUpdateExclusiveLock")
        return j

    def _pg_vacuum(self, c: _Cursor) -> _Judgement:
        options = c.parens() or []
        words = set(_words(options)) | set(_words(c.tokens[: c.i + 2]))
        full = "FULL" in words
        if c.accept("FULL"):
            full = True
        c.accept_any("FREEZE", "VERBOSE", "ANALYZE", "ANALYSE")
        j = _Judgement("VACUUM FULL" if full else "VACUUM")
        tables = [_Cursor(part, self.vendor).name() for part in _split(c.rest())]
        if not tables:
            raise _CannotJudge("VACUUM of the whole database")
        for table in tables:
            if table:
                if full:
                    self.effect(j, table, "AccessExclusiveLock", rewrites=True)
                else:
                    self.effect(j, table, "ShareUpdateExclusiveLock", scans=True, work="scan")
        return j

    def _pg_reindex(self, c: _Cursor) -> _Judgement:
        c.parens()
        kind = c.accept_any("INDEX", "TABLE", "SCHEMA", "DATABASE", "SYSTEM")
        concurrently = c.accept("CONCURRENTLY")
        name = c.name() or ""
        table = (
            self.schema.indexes.get(name) if kind == "INDEX" else name if kind == "TABLE" else None
        )
        if not table:
            raise _CannotJudge(f"REINDEX {kind} {name}".strip())
        j = _Judgement("REINDEX" + (" CONCURRENTLY" if concurrently else ""))
        lock = "ShareUpdateExclusiveLock" if concurrently else "ShareLock"
        self.effect(j, table, lock, scans=True, work="index")
        return j

    # DML (every backend)

    def _dml(self, c: _Cursor, write_lock: str, read_lock: str) -> _Judgement:
        verb = c.accept_any("INSERT", "UPDATE", "DELETE", "REPLACE")
        c.accept_any("LOW_PRIORITY", "IGNORE", "OR", "DELAYED", "QUICK")
        c.accept_any("REPLACE", "IGNORE", "ABORT", "FAIL", "ROLLBACK")
        c.accept_any("INTO", "FROM")
        c.accept("ONLY")
        table = c.name()
        if table is None:
            raise _CannotJudge(f"{verb} without a table")
        j = _Judgement(verb)
        rest = c.tokens[c.i :]
        sources = _source_tables(rest, self.vendor, {table})
        target = self.schema.table(table)
        if verb in ("INSERT", "REPLACE"):
            remake = (
                self.vendor == "sqlite"
                and target is not None
                and target.info is None
                and len(sources) == 1
                and (source := self.schema.table(sources[0])) is not None
                and source.info is not None
            )
            self.effect(j, table, write_lock)
            for name in sources:
                # Django's SQLite schema editor remakes a table: INSERT INTO "new__x" SELECT
                # ... FROM "x", then DROP "x" and RENAME: the copy is the rewrite of "x".
                self.effect(j, name, read_lock, rewrites=remake, scans=True, work="scan")
            if remake and target is not None:
                copied = self.schema.table(sources[0])
                assert copied is not None
                target.info = copied.info
                j.action = "copy into the remade table"
            return j
        # UPDATE and DELETE: every row they change stays locked against writes until the commit;
        # without an index on the condition, they read the whole table to find the rows.
        self.effect(j, table, write_lock, scans=True, row_locks=True, work="write")
        for name in sources:
            self.effect(j, name, read_lock, scans=True, work="scan")
        if "WHERE" in _top_words(rest):
            j.note = "the time is for the whole table: a WHERE clause may change fewer rows"
        return j

    # MySQL / MariaDB

    def _mysql(self, c: _Cursor) -> _Judgement:
        if c.accept("ALTER", "TABLE") or c.accept("ALTER", "IGNORE", "TABLE"):
            return self._mysql_alter_table(c)
        if c.at("CREATE"):
            c.accept("CREATE")
            c.accept("OR", "REPLACE")
            kind = c.accept_any("UNIQUE", "FULLTEXT", "SPATIAL")
            if c.accept("INDEX"):
                c.accept("IF", "NOT", "EXISTS")
                name = c.name()
                if not c.accept("ON"):
                    raise _CannotJudge("CREATE INDEX without ON")
                table = c.name() or ""
                j = _Judgement(f"CREATE {kind + ' ' if kind else ''}INDEX")
                algorithm, lock, rebuild = self._mysql_index(table, kind)
                self.effect(
                    j, table, lock, algorithm=algorithm, rewrites=rebuild, scans=True, work="index"
                )
                if name:
                    self.schema.indexes[name] = table
                return j
            c.accept("TEMPORARY")
            if c.accept("TABLE"):
                return self._create_table(c, postgresql=False)
            word = " ".join(_words(c.tokens[1:2]))
            return _Judgement(f"CREATE {word}".strip(), summary="creates no table: locks none")
        if c.accept("DROP", "TABLE") or c.accept("DROP", "TEMPORARY", "TABLE"):
            return self._drop_tables(c, "EXCLUSIVE")
        if c.accept("DROP", "INDEX"):
            index = c.name() or ""
            on = c.name() if c.accept("ON") else None
            j = _Judgement("DROP INDEX")
            if on:
                self.effect(j, on, "NONE", algorithm="INPLACE")
                self.schema.indexes.pop(index, None)
            return j
        if c.accept("RENAME", "TABLE"):
            j = _Judgement("RENAME TABLE")
            for part in _split(c.rest()):
                pair = _Cursor(part, self.vendor)
                old = pair.name()
                if old and pair.accept("TO") and (new := pair.name()):
                    self.effect(j, old, "EXCLUSIVE")
                    self.schema.rename(old, new)
            return j
        if c.accept("TRUNCATE"):
            c.accept("TABLE")
            j = _Judgement("TRUNCATE", note="empties the table")
            if emptied := c.name():
                self.effect(j, emptied, "EXCLUSIVE")
            return j
        if c.at("INSERT", "UPDATE", "DELETE", "REPLACE"):
            return self._dml(c, "NONE", "NONE")
        if c.at(
            "SELECT",
            "SET",
            "SHOW",
            "DO",
            "BEGIN",
            "START",
            "COMMIT",
            "ROLLBACK",
            "SAVEPOINT",
            "RELEASE",
            "GRANT",
            "REVOKE",
            "ANALYZE",
        ):
            return _Judgement(" ".join(_words(c.tokens[:1])), summary="locks no table for long")
        raise _CannotJudge(f"cannot judge {' '.join(_words(c.tokens[:2])) or 'this SQL'}")

    def _mysql_index(self, table: str, kind: str) -> tuple[str, str, bool]:
        if kind == "FULLTEXT":
            found = self.schema.table(table)
            first = found is None or found.info is None or not found.info.fulltext
            return "INPLACE", "SHARED", first  # the first one adds a hidden column: rebuild
        if kind == "SPATIAL":
            return "INPLACE", "SHARED", False
        return "INPLACE", "NONE", False

    def _mysql_alter_table(self, c: _Cursor) -> _Judgement:
        table = c.name()
        if table is None:
            raise _CannotJudge("ALTER TABLE without a table name")
        parts = [p for p in _split(c.rest()) if not (p[0].word("ALGORITHM", "LOCK"))]
        j = _Judgement("ALTER TABLE")
        steps = [self._mysql_subcommand(table, _Cursor(part, self.vendor)) for part in parts]
        if not steps:
            raise _CannotJudge("ALTER TABLE with nothing to do")
        # Dropping the primary key copies the table, unless the same statement adds a new one:
        # then InnoDB rebuilds it in place around the new key.
        if any(s.drops_primary for s in steps) and any(s.adds_primary for s in steps):
            for step in steps:
                if step.drops_primary:
                    step.algorithm, step.lock = "INPLACE", "NONE"
        # A column added instantly loses that when the statement does anything else that is not
        # instant: the whole statement then rebuilds the table.
        if any(s.instant_add for s in steps) and any(s.algorithm != "INSTANT" for s in steps):
            for step in steps:
                if step.instant_add:
                    step.algorithm, step.rebuild = "INPLACE", True
        algorithm = max((s.algorithm for s in steps), key=_ALGORITHMS.index)
        lock = max((s.lock for s in steps), key=_MYSQL_LOCKS.index)
        rebuild = any(s.rebuild for s in steps) or algorithm == "COPY"
        scans = rebuild or any(s.scans for s in steps)
        self.effect(
            j,
            table,
            lock,
            algorithm=algorithm,
            rewrites=rebuild,
            scans=scans,
            work="rewrite" if rebuild else ("index" if scans else ""),
        )
        for step in steps:
            step.apply()
        j.action = " + ".join(dict.fromkeys(s.action for s in steps))
        notes = [s.note for s in steps if s.note]
        j.note = "; ".join(notes)
        return j

    def _mysql_subcommand(self, table: str, c: _Cursor) -> _MySQLStep:
        mariadb, version = self.catalog.mariadb, self.catalog.version
        found = self.schema.table(table)
        info = found.info if found else None
        fulltext = bool(info and info.fulltext)
        compressed = bool(info and info.row_format == "COMPRESSED")
        step = _MySQLStep("ALTER TABLE")
        if c.accept("ADD"):
            kind = c.accept_any("UNIQUE", "FULLTEXT", "SPATIAL")
            if c.at("INDEX", "KEY") or kind:
                c.accept_any("INDEX", "KEY")
                index = None if c.at_punct("(") else c.simple_name()
                step.action = f"ADD {kind + ' ' if kind else ''}INDEX"
                step.algorithm, step.lock, step.rebuild = self._mysql_index(table, kind)
                step.scans = True
                if index:
                    step.later.append(
                        functools.partial(self.schema.indexes.__setitem__, index, table)
                    )
                return step
            name = c.simple_name() if c.accept("CONSTRAINT") else None
            if c.accept("PRIMARY", "KEY"):
                step.action, step.algorithm, step.rebuild, step.scans = (
                    "ADD PRIMARY KEY",
                    "INPLACE",
                    True,
                    True,
                )
                step.adds_primary = True
                return step
            if c.accept("UNIQUE"):
                c.accept_any("INDEX", "KEY")
                step.action, step.algorithm, step.scans = "ADD UNIQUE", "INPLACE", True
                if name:
                    step.later.append(
                        functools.partial(self.schema.indexes.__setitem__, name, table)
                    )
                return step
            if c.accept("FOREIGN", "KEY"):
                if not c.at_punct("("):
                    c.simple_name()  # the index's name
                columns = tuple(_names(c.parens() or [], self.vendor))
                ref = c.name() if c.accept("REFERENCES") else None
                step.action = "ADD FOREIGN KEY"
                if self.catalog.foreign_key_checks:
                    # With foreign_key_checks on, InnoDB copies the table to check the rows.
                    step.algorithm, step.lock, step.rebuild = "COPY", "SHARED", True
                else:
                    step.algorithm = "INPLACE"
                if ref:
                    fk = Constraint(name or f"{table}_ibfk", table, "f", columns, ref)
                    step.later.append(functools.partial(self.schema.constraints.append, fk))
                return step
            if c.accept("CHECK"):
                step.action, step.algorithm, step.lock, step.rebuild = (
                    "ADD CHECK",
                    "COPY",
                    "SHARED",
                    True,
                )
                return step
            c.accept("COLUMN")
            c.accept("IF", "NOT", "EXISTS")
            added = c.simple_name()
            if added is None:
                raise _CannotJudge("ADD COLUMN without a column")
            definition = _column_definition(c.rest(), _MYSQL_CLAUSES)
            step.action = "ADD COLUMN"
            positioned = definition.positioned
            if definition.auto_increment:
                step.algorithm, step.lock, step.rebuild = "INPLACE", "SHARED", True
            elif definition.generated == "stored":
                step.algorithm, step.lock, step.rebuild = "COPY", "SHARED", True
            elif (
                definition.unique
                or definition.primary
                or fulltext
                or compressed
                or not _mysql_instant_add(mariadb, version, positioned)
            ):
                step.algorithm, step.rebuild = "INPLACE", True
            elif not mariadb and definition.default_expression:
                # MySQL: expression defaults are not documented as instant.
                step.algorithm, step.rebuild = "INPLACE", True
                step.note = "assumes an expression DEFAULT is not instant on MySQL"
            else:
                step.algorithm, step.instant_add = "INSTANT", True
            if found is not None:
                new = ColumnInfo(definition.type, definition.not_null or definition.primary)
                step.later.append(functools.partial(found.columns.__setitem__, added, new))
            return step
        if c.accept("DROP"):
            if c.accept("PRIMARY", "KEY"):
                step.action, step.algorithm, step.lock, step.rebuild = (
                    "DROP PRIMARY KEY",
                    "COPY",
                    "SHARED",
                    True,
                )
                step.drops_primary = True
                return step
            if c.accept("FOREIGN", "KEY"):
                dropped = c.simple_name() or ""
                step.action = "DROP FOREIGN KEY"
                step.algorithm = "INSTANT" if mariadb else "INPLACE"
                step.later.append(functools.partial(self._forget_constraint, table, dropped))
                return step
            if c.at("INDEX", "KEY"):
                c.accept_any("INDEX", "KEY")
                dropped = c.simple_name() or ""
                step.action, step.algorithm = "DROP INDEX", "INPLACE"
                step.later.append(functools.partial(self.schema.indexes.pop, dropped, None))
                return step
            if c.accept("CHECK") or c.accept("CONSTRAINT"):
                dropped = c.simple_name() or ""
                found_constraint = self.schema.constraint(table, dropped)
                kind = found_constraint.kind if found_constraint else "c"
                step.action = "DROP CONSTRAINT"
                if kind == "f":
                    step.algorithm = "INSTANT" if mariadb else "INPLACE"
                elif kind in ("u", "p"):
                    step.algorithm = "INPLACE"
                    step.rebuild = kind == "p"
                else:
                    step.algorithm = "INSTANT" if mariadb else "INPLACE"
                step.later.append(functools.partial(self._forget_constraint, table, dropped))
                return step
            c.accept("COLUMN")
            c.accept("IF", "EXISTS")
            column = c.simple_name() or ""
            info_column = self.schema.column(table, column)
            indexed = bool(info_column and info_column.indexed)
            in_primary = any(
                k.kind == "p" and column in k.columns
                for k in self.schema.constraints
                if k.table == table
            )
            step.action = "DROP COLUMN"
            if in_primary:
                step.algorithm, step.rebuild = "INPLACE", True
            elif mariadb and version >= (10, 4) and not (fulltext or compressed):
                # Dropping the column's index too makes it in-place (no copy).
                step.algorithm = "INPLACE" if indexed else "INSTANT"
            elif not mariadb and version >= (8, 0, 29) and not (fulltext or compressed or indexed):
                step.algorithm = "INSTANT"
            else:
                step.algorithm, step.rebuild = "INPLACE", True

            if found is not None:
                step.later.append(functools.partial(found.columns.pop, column, None))
            return step
        if c.accept("MODIFY") or c.at("CHANGE"):
            rename_to = None
            if c.accept("CHANGE"):
                c.accept("COLUMN")
                column = c.simple_name() or ""
                rename_to = c.simple_name()
            else:
                c.accept("COLUMN")
                column = c.simple_name() or ""
            definition = _column_definition(c.rest(), _MYSQL_CLAUSES)
            old = self.schema.column(table, column)
            step.action = "MODIFY" if rename_to is None else "CHANGE"
            step.algorithm, step.lock, step.rebuild, step.note = _mysql_modify(
                old, definition, mariadb, version, self.schema.checks_on(table, column)
            )
            renamed = rename_to is not None and rename_to != column
            if renamed and step.algorithm == "INSTANT" and not mariadb and version < (8, 0, 28):
                step.algorithm = "INPLACE"
            step.scans = step.rebuild
            new = ColumnInfo(
                definition.type,
                definition.not_null or definition.primary,
                char_bytes=old.char_bytes if old else None,
                indexed=bool(old and old.indexed),
            )

            if found is not None:
                step.later.append(functools.partial(found.columns.pop, column, None))
                step.later.append(
                    functools.partial(found.columns.__setitem__, rename_to or column, new)
                )
            return step
        if c.accept("ALTER"):
            c.accept("COLUMN")
            c.simple_name()
            step.action, step.algorithm = "SET/DROP DEFAULT", "INSTANT"
            return step
        if c.accept("RENAME"):
            if c.accept_any("INDEX", "KEY"):
                old_name, _, new_name = c.simple_name(), c.accept("TO"), c.simple_name()
                step.action = "RENAME INDEX"
                step.algorithm = "INSTANT" if mariadb else "INPLACE"
                if old_name and new_name:
                    step.later.append(functools.partial(self._rename_index, old_name, new_name))
                return step
            if c.accept("COLUMN"):
                old_name, _, new_name = c.simple_name(), c.accept("TO"), c.simple_name()
                step.action = "RENAME COLUMN"
                step.algorithm = "INSTANT" if mariadb or version >= (8, 0, 28) else "INPLACE"
                if old_name and new_name:
                    step.later.append(
                        functools.partial(self._rename_column, table, old_name, new_name)
                    )
                return step
            c.accept_any("TO", "AS")
            new_table = c.name()
            step.action = "RENAME TO"
            # MariaDB allows no LOCK=NONE for a rename; MySQL documents it as instant.
            step.algorithm, step.lock = ("INPLACE", "EXCLUSIVE") if mariadb else ("INSTANT", "NONE")
            if new_table:
                step.later.append(functools.partial(self.schema.rename, table, new_table))
            return step
        if c.accept("COMMENT") or c.accept("AUTO_INCREMENT"):
            step.action = _words(c.tokens[:1])[0]
            step.algorithm = "INSTANT" if mariadb else "INPLACE"
            return step
        if c.at("ENGINE", "FORCE", "ROW_FORMAT", "KEY_BLOCK_SIZE"):
            step.action, step.algorithm, step.rebuild = _words(c.tokens[:1])[0], "INPLACE", True
            return step
        if c.accept("CONVERT", "TO"):
            step.action, step.algorithm, step.lock, step.rebuild = (
                "CONVERT TO CHARACTER SET",
                "COPY",
                "SHARED",
                True,
            )
            return step
        if c.at("DEFAULT", "CHARACTER", "CHARSET", "COLLATE"):
            step.action, step.algorithm = "DEFAULT CHARACTER SET", "INPLACE"
            return step
        raise _CannotJudge(f"cannot judge ALTER TABLE ... {' '.join(_words(c.tokens[:2]))}")

    def _rename_index(self, old: str, new: str) -> None:
        if old in self.schema.indexes:
            self.schema.indexes[new] = self.schema.indexes.pop(old)

    def _forget_constraint(self, table: str, name: str) -> None:
        found = self.schema.constraint(table, name)
        if found is not None:
            self.schema.remove_constraint(found)

    # SQLite

    def _sqlite(self, c: _Cursor) -> _Judgement:
        lock = SQLITE_LOCK
        if c.accept("ALTER", "TABLE"):
            table = c.name()
            if table is None:
                raise _CannotJudge("ALTER TABLE without a table name")
            j = _Judgement("ALTER TABLE")
            if c.accept("RENAME"):
                if c.accept("TO"):
                    new = c.name()
                    self.effect(j, table, lock)
                    if new:
                        self.schema.drop(new)  # Django dropped the old one just before
                        self.schema.rename(table, new)
                    j.action = "RENAME TO"
                    return j
                c.accept("COLUMN")
                self.effect(j, table, lock)
                j.action = "RENAME COLUMN"
                return j
            if c.accept("ADD"):
                self.effect(j, table, lock)  # SQLite only changes the schema
                j.action = "ADD COLUMN"
                return j
            if c.accept("DROP"):
                # SQLite rewrites every row without the column.
                self.effect(j, table, lock, rewrites=True)
                j.action = "DROP COLUMN"
                return j
            raise _CannotJudge("cannot judge this ALTER TABLE")
        if c.at("CREATE"):
            c.accept("CREATE")
            unique = c.accept("UNIQUE")
            if c.accept("INDEX"):
                c.accept("IF", "NOT", "EXISTS")
                name = c.name()
                table = c.name() if c.accept("ON") else None
                j = _Judgement(f"CREATE {'UNIQUE ' if unique else ''}INDEX")
                if table:
                    self.effect(j, table, lock, scans=True, work="index")
                    if name:
                        self.schema.indexes[name] = table
                return j
            c.accept_any("TEMP", "TEMPORARY")
            if c.accept("TABLE"):
                return self._create_table(c, postgresql=False)
            return _Judgement("CREATE", summary="creates no table")
        if c.accept("DROP", "TABLE"):
            return self._drop_tables(c, lock)
        if c.accept("DROP", "INDEX"):
            c.accept("IF", "EXISTS")
            name = c.name() or ""
            j = _Judgement("DROP INDEX")
            if table := self.schema.indexes.pop(name, None):
                self.effect(j, table, lock)
            return j
        if c.at("INSERT", "UPDATE", "DELETE", "REPLACE"):
            return self._dml(c, lock, lock)
        if c.at("SELECT", "PRAGMA", "BEGIN", "COMMIT", "SAVEPOINT", "RELEASE", "ANALYZE"):
            return _Judgement(" ".join(_words(c.tokens[:1])), summary="locks no table for long")
        raise _CannotJudge(f"cannot judge {' '.join(_words(c.tokens[:2])) or 'this SQL'}")


SQLITE_LOCK = "database write lock"
_MYSQL_LOCKS = ("NONE", "SHARED", "EXCLUSIVE")
_ALGORITHMS = ("INSTANT", "INPLACE", "COPY")


def _max_algorithm(a: str | None, b: str | None) -> str | None:
    if a is None or b is None:
        return a or b
    return max(a, b, key=_ALGORITHMS.index)


class _CannotJudge(Exception):
    pass


@dataclasses.dataclass
class _MySQLStep:
    """One ALTER TABLE clause on MySQL/MariaDB; ``later`` changes the schema after the statement
    is judged (the clauses of one statement see the table as it was)."""

    action: str
    algorithm: str = "INPLACE"
    lock: str = "NONE"
    rebuild: bool = False
    scans: bool = False
    instant_add: bool = False
    adds_primary: bool = False
    drops_primary: bool = False
    note: str = ""
    later: list[Callable[[], object]] = dataclasses.field(default_factory=list)

    def apply(self) -> None:
        for change in self.later:
            change()


def _mysql_instant_add(mariadb: bool, version: tuple[int, ...], positioned: bool) -> bool:
    if mariadb:
        return version >= (10, 4) or (version >= (10, 3, 2) and not positioned)
    return version >= (8, 0, 29) or (version >= (8, 0, 12) and not positioned)


def _mysql_modify(
    old: ColumnInfo | None,
    new: _ColumnDefinition,
    mariadb: bool,
    version: tuple[int, ...],
    checks: list[Constraint],
) -> tuple[str, str, bool, str]:
    """(algorithm, lock, rebuild, note) of ``MODIFY col new`` over ``old``."""
    if old is None:
        return "COPY", "SHARED", True, "the column's current type is unknown: assumed a copy"
    old_type, new_type = _mysql_type(old.type), _mysql_type(new.type)
    steps: list[tuple[str, bool]] = []  # (algorithm, rebuild)
    if old_type != new_type:
        old_kind, old_length = _varchar(old_type)
        new_kind, new_length = _varchar(new_type)
        if old_kind is None or old_kind != new_kind or new_length < old_length:
            return "COPY", "SHARED", True, ""
        per_char = old.char_bytes or 1
        old_bytes = old.octet_length or old_length * per_char
        new_bytes = new_length * per_char
        # A longer VARCHAR keeps its rows when its length prefix keeps its size (1 byte up to
        # 255 bytes, 2 above); else the table is copied.
        if (old_bytes <= 255) != (new_bytes <= 255):
            return "COPY", "SHARED", True, ""
        steps.append(("INSTANT" if mariadb else "INPLACE", False))
    if old.not_null and not new.not_null and not new.primary:
        instant = mariadb and version >= (10, 4, 3) and not old.indexed and not checks
        steps.append(("INSTANT", False) if instant else ("INPLACE", True))
    elif not old.not_null and (new.not_null or new.primary):
        steps.append(("INPLACE", True))  # every row is checked and the table rebuilt
    if not steps:
        # Same type and nullability: a new default or comment is metadata only.
        steps.append(("INSTANT", False) if mariadb else ("INPLACE", False))
    algorithm = max((s[0] for s in steps), key=_ALGORITHMS.index)
    return algorithm, "NONE", any(s[1] for s in steps), ""


_MYSQL_INT = re.compile(r"^(tinyint|smallint|mediumint|int|bigint)\(\d+\)")
_MYSQL_ALIASES = {
    "integer": "int",
    "bool": "tinyint",
    "boolean": "tinyint",
    "numeric": "decimal",
    "dec": "decimal",
    "fixed": "decimal",
    "doubleprecision": "double",
    "real": "double",
    "charactervarying": "varchar",
    "character": "char",
}


def _mysql_type(text: str) -> str:
    """``bigint(20)``/``bigint`` -> ``bigint``; ``numeric(12, 2)`` -> ``decimal(12,2)``."""
    value = re.sub(r"\s+", "", text.lower())
    base, _, rest = value.partition("(")
    base = _MYSQL_ALIASES.get(base, base)
    value = base + ("(" + rest if rest else "")
    value = _MYSQL_INT.sub(r"\1", value)
    if value == "decimal":
        value = "decimal(10,0)"
    return value


def _varchar(type_: str) -> tuple[str | None, int]:
    match = re.fullmatch(r"(varchar|varbinary)\((\d+)\)", type_)
    return (match.group(1), int(match.group(2))) if match else (None, 0)


# --- column definitions ------------------------------------------------------------------------


@dataclasses.dataclass
class _ColumnDefinition:
    type: str = ""
    not_null: bool = False
    default: list[_Token] = dataclasses.field(default_factory=list)
    default_expression: bool = False
    primary: bool = False
    unique: bool = False
    check: list[_Token] = dataclasses.field(default_factory=list)
    references: tuple[str, tuple[str, ...]] | None = None
    #: "identity" or "stored" (PostgreSQL); "stored" or "virtual" (MySQL).
    generated: str = ""
    auto_increment: bool = False
    positioned: bool = False
    constraint_name: str | None = None


_PG_CLAUSES = frozenset(
    {"CONSTRAINT", "NOT", "NULL", "DEFAULT", "PRIMARY", "UNIQUE", "CHECK", "REFERENCES",
     "GENERATED", "COLLATE", "COMPRESSION", "STORAGE", "DEFERRABLE", "INITIALLY"}
)  # fmt: skip
_MYSQL_CLAUSES = frozenset(
    {"CONSTRAINT", "NOT", "NULL", "DEFAULT", "PRIMARY", "UNIQUE", "KEY", "CHECK", "REFERENCES",
     "GENERATED", "AS", "COLLATE", "CHARACTER", "CHARSET", "COMMENT", "AUTO_INCREMENT", "FIRST",
     "AFTER", "ON", "INVISIBLE", "VISIBLE", "STORED", "VIRTUAL", "PERSISTENT", "COLUMN_FORMAT",
     "STORAGE", "SRID"}
)  # fmt: skip


def _column_definition(tokens: Sequence[_Token], clauses: frozenset[str]) -> _ColumnDefinition:
    definition = _ColumnDefinition()
    vendor = "mysql" if "AUTO_INCREMENT" in clauses else "postgresql"
    start = next(
        (i for i, t in enumerate(tokens) if t.kind == "word" and t.value.upper() in clauses),
        len(tokens),
    )
    definition.type = _text(tokens[:start])
    c = _Cursor(tokens[start:], vendor)
    while not c.done():
        if c.accept("NOT", "NULL"):
            definition.not_null = True
        elif c.accept("NULL"):
            definition.not_null = False
        elif c.accept("CONSTRAINT"):
            definition.constraint_name = c.simple_name()
        elif c.accept("DEFAULT"):
            begin = c.i
            c.i += 1  # the value itself may be a keyword (NULL, CURRENT_TIMESTAMP)
            if c.tokens[begin].kind == "punct" and c.tokens[begin].value == "(":
                c.i = begin
                c.parens()
                definition.default_expression = True
            while not c.done():
                token = c.peek()
                assert token is not None
                if token.kind == "word" and token.value.upper() in clauses:
                    break
                if token.kind == "punct" and token.value == "(":
                    c.parens()
                else:
                    c.i += 1
            definition.default = c.tokens[begin : c.i]
        elif c.accept("PRIMARY", "KEY"):
            definition.primary = True
        elif c.accept("UNIQUE"):
            c.accept("KEY")
            definition.unique = True
        elif c.accept("KEY"):
            definition.primary = vendor == "mysql"
        elif c.accept("CHECK"):
            definition.check = c.parens() or []
        elif c.accept("REFERENCES"):
            table = c.name() or ""
            definition.references = (table, tuple(_names(c.parens() or [], vendor)))
        elif c.accept("GENERATED"):
            words = _top_words(c.tokens[c.i :])
            c.accept("ALWAYS")
            c.accept("BY", "DEFAULT")
            c.accept("AS")
            if c.accept("IDENTITY"):
                definition.generated = "identity"
                c.parens()
            else:
                c.parens()
                stored = "STORED" in words[:3] or "PERSISTENT" in words[:3]
                definition.generated = "stored" if stored or vendor == "postgresql" else "virtual"
        elif c.accept("AS") and c.at_punct("("):
            c.parens()
            words = _top_words(c.tokens[c.i :])
            definition.generated = (
                "stored" if words[:1] in (["STORED"], ["PERSISTENT"]) else "virtual"
            )
        elif c.accept("AUTO_INCREMENT"):
            definition.auto_increment = True
        elif c.accept_any("FIRST", "AFTER"):
            definition.positioned = True
            c.simple_name()
        else:
            c.i += 1
    return definition


def _names(tokens: Sequence[_Token], vendor: str) -> list[str]:
    return [_normal(t, vendor) for t in tokens if t.kind in ("word", "ident")]


def _is_null(tokens: Sequence[_Token]) -> bool:
    inner = [t for t in tokens if not (t.kind == "punct" and t.value in "()")]
    return len(inner) == 1 and inner[0].word("NULL")


_PG_SERIALS = frozenset({"serial", "bigserial", "smallserial", "serial2", "serial4", "serial8"})
#: Functions whose value differs row by row: a DEFAULT calling one fills every row, a rewrite.
_PG_VOLATILE = frozenset(
    {"random", "clock_timestamp", "timeofday", "gen_random_uuid", "uuid_generate_v1",
     "uuid_generate_v1mc", "uuid_generate_v4", "uuidv4", "uuidv7", "nextval", "setval",
     "random_normal", "txid_current", "pg_current_xact_id"}
)  # fmt: skip
#: Common stable or immutable ones (one value for the statement: no rewrite since PostgreSQL 11).
_PG_STABLE = frozenset(
    {"now", "statement_timestamp", "transaction_timestamp", "current_timestamp", "current_date",
     "localtimestamp", "current_time", "localtime", "lower", "upper", "coalesce", "concat",
     "nullif", "greatest", "least", "length", "abs", "round", "md5", "make_interval", "make_date",
     "make_timestamp", "make_timestamptz", "to_timestamp", "to_date", "jsonb_build_object",
     "json_build_object", "jsonb_build_array", "json_build_array", "array", "cast", "timezone",
     "date_trunc", "current_user", "session_user", "current_setting", "interval", "row"}
)  # fmt: skip
_PG_WEAK_PARAMETERS = frozenset(
    {"fillfactor", "toast_tuple_target", "parallel_workers", "log_autovacuum_min_duration",
     "user_catalog_table"}
)  # fmt: skip


def _pg_volatile(tokens: Sequence[_Token]) -> tuple[bool, str]:
    """Whether a DEFAULT expression is volatile, and a note when that is assumed."""
    for index, token in enumerate(tokens[:-1]):
        following = tokens[index + 1]
        if token.kind == "word" and following.kind == "punct" and following.value == "(":
            name = token.value.lower()
            if name in _PG_VOLATILE:
                return True, ""
            if name not in _PG_STABLE:
                return True, f"assumes {name}() is volatile (a rewrite)"
    return False, ""


_PG_TYPE_ALIASES = {
    "int": "integer",
    "int4": "integer",
    "int8": "bigint",
    "int2": "smallint",
    "float8": "double precision",
    "float": "double precision",
    "float4": "real",
    "bool": "boolean",
    "varchar": "character varying",
    "char": "character",
    "bpchar": "character",
    "decimal": "numeric",
    "timestamptz": "timestamp with time zone",
    "timestamp": "timestamp without time zone",
    "timetz": "time with time zone",
    "time": "time without time zone",
}
_PG_TIME_TYPES = frozenset(
    {"timestamp with time zone", "timestamp without time zone", "time with time zone",
     "time without time zone", "interval"}
)  # fmt: skip


def _pg_type(text: str) -> tuple[str, tuple[int, ...] | None]:
    """``varchar(40)`` -> (``character varying``, (40,)); ``timestamptz`` -> (..., None)."""
    value = " ".join(text.lower().replace('"', "").split())
    modifiers: tuple[int, ...] | None = None
    match = re.search(r"\(([\d\s,]+)\)", value)
    if match:
        modifiers = tuple(int(x) for x in match.group(1).split(",") if x.strip())
        value = " ".join((value[: match.start()] + " " + value[match.end() :]).split())
    value = value.replace(" [", "[").removeprefix("pg_catalog.")
    return _PG_TYPE_ALIASES.get(value, value), modifiers


def _pg_type_rewrites(
    old: str | None, new: str, using: Sequence[_Token], column: str, utc: bool, vendor: str
) -> tuple[bool, str]:
    """Whether ``ALTER COLUMN TYPE new`` over ``old`` rewrites the table (not binary-coercible),
    and a note when that is assumed."""
    if using:
        # USING "col"::type is the cast the change makes anyway; any other expression rewrites.
        inner = [t for t in using if not (t.kind == "punct" and t.value in "()")]
        plain = (
            bool(inner)
            and _normal(inner[0], vendor) == column
            and (len(inner) == 1 or (inner[1].kind == "op" and inner[1].value == ":"))
        )
        if not plain:
            return True, ""
    if old is None:
        return True, "the column's current type is unknown: assumed a rewrite"
    (old_base, old_mod), (new_base, new_mod) = _pg_type(old), _pg_type(new)
    if (old_base, old_mod) == (new_base, new_mod):
        return False, ""
    if old_base == new_base and (
        new_mod is None or (old_mod is not None and _wider(old_base, old_mod, new_mod))
    ):
        # A longer varchar, a wider numeric of the same scale, a finer timestamp.
        return (
            old_base not in ("character varying", "numeric", "bit varying")
            and old_base not in _PG_TIME_TYPES
        ), ""
    if old_base in ("character varying", "text") and new_base == "text":
        return False, ""
    if old_base == "text" and new_base == "character varying" and new_mod is None:
        return False, ""
    zones = {old_base, new_base} == {"timestamp with time zone", "timestamp without time zone"}
    if zones and (old_mod == new_mod or new_mod is None):
        return not utc, "" if utc else "the session's time zone is not UTC"
    return True, ""


def _wider(base: str, old: tuple[int, ...], new: tuple[int, ...]) -> bool:
    if base == "numeric":
        old_scale = old[1] if len(old) > 1 else 0
        new_scale = new[1] if len(new) > 1 else 0
        return old_scale == new_scale and new[0] >= old[0]
    return new[0] >= old[0]


def _source_tables(tokens: Sequence[_Token], vendor: str, exclude: set[str]) -> list[str]:
    """The tables after FROM, JOIN and USING (the ones DML reads)."""
    found: list[str] = []
    for index, token in enumerate(tokens):
        if token.word("FROM", "JOIN", "USING") and index + 1 < len(tokens):
            c = _Cursor(tokens[index + 1 :], vendor)
            c.accept("ONLY")
            name = c.name()
            if name and name not in exclude and name not in found:
                found.append(name)
    return found


# --- verdicts ----------------------------------------------------------------------------------

_READ_BLOCKING = frozenset({"AccessExclusiveLock"})
_WRITE_BLOCKING = frozenset(
    {"ShareLock", "ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock"}
)


def _table_verdict(vendor: str, table: TableForecast) -> str:
    if vendor == "sqlite":
        if table.lock != SQLITE_LOCK:
            return SAFE
        if table.exists and table.rewrites:
            return REWRITES
        if table.exists and (table.scans or table.row_locks):
            return BLOCKS_WRITES
        return BRIEF_LOCK  # the whole database's writers wait, if only for an instant
    if not table.exists:
        return SAFE  # created by the plan: nobody else uses it yet
    if vendor == "postgresql":
        if table.lock in _READ_BLOCKING:
            return REWRITES if table.rewrites else BLOCKS_READS if table.scans else BRIEF_LOCK
        if table.lock in _WRITE_BLOCKING:
            return REWRITES if table.rewrites else BLOCKS_WRITES if table.scans else BRIEF_LOCK
        return BLOCKS_WRITES if table.row_locks else SAFE
    if vendor == "mysql":
        if table.algorithm is None:  # DML, DROP, RENAME TABLE
            if table.row_locks:
                return BLOCKS_WRITES
            return BRIEF_LOCK if table.lock == "EXCLUSIVE" else SAFE
        if table.lock == "EXCLUSIVE":
            return REWRITES if table.rewrites else BLOCKS_READS if table.scans else BRIEF_LOCK
        if table.lock == "SHARED":
            return REWRITES if table.rewrites else BLOCKS_WRITES
        # LOCK=NONE: reads and writes go on, but an exclusive metadata lock is taken for an
        # instant at the start and the end: it waits behind open transactions on the table.
        return BRIEF_LOCK
    return UNKNOWN


def _table_message(vendor: str, table: TableForecast, level: str) -> str:
    seconds = human_seconds(table.seconds)
    if vendor == "sqlite":
        if level == REWRITES:
            return (
                f"rewrites {human_size(table.size_bytes)}, "
                f"blocking writes to the whole database for {seconds}"
            )
        if level == BLOCKS_WRITES:
            return f"blocks writes to the whole database for {seconds}"
        return "takes the database write lock for an instant"
    if vendor == "mysql":
        if level == REWRITES:
            what = "reads and writes" if table.lock == "EXCLUSIVE" else "writes"
            size = human_size(table.size_bytes)
            return f"rewrites {size} ({table.algorithm}), blocking {what} for {seconds}"
        if level == BLOCKS_READS:
            return f"blocks reads and writes for {seconds}"
        if level == BLOCKS_WRITES:
            if table.row_locks:
                return f"locks the rows it changes against writes for up to {seconds}"
            return f"blocks writes for {seconds}"
        if level == BRIEF_LOCK and table.rewrites:
            return (
                f"rebuilds {human_size(table.size_bytes)} online ({seconds}); locks out reads "
                "and writes for an instant at the start and end"
            )
        if level == BRIEF_LOCK:
            return (
                "locks out reads and writes for an instant "
                "(metadata lock; waits behind open transactions)"
            )
        return "reads and writes go on"
    if level == REWRITES:
        what = "reads and writes" if table.lock in _READ_BLOCKING else "writes"
        return f"rewrites {human_size(table.size_bytes)}, blocking {what} for {seconds}"
    if level == BLOCKS_READS:
        return f"blocks reads and writes for {seconds}"
    if level == BLOCKS_WRITES:
        if table.row_locks and table.lock not in _WRITE_BLOCKING:
            return f"locks the rows it changes against writes for up to {seconds}"
        return f"blocks writes for {seconds}"
    if level == BRIEF_LOCK:
        what = "reads and writes" if table.lock in _READ_BLOCKING else "writes"
        return f"blocks {what} for an instant (queues behind long transactions)"
    return f"{table.lock}: reads and writes go on"


# --- the plan ----------------------------------------------------------------------------------

_RUN_PYTHON = "-- THIS OPERATION CANNOT BE WRITTEN AS SQL"

BlockerLookup = Callable[[str, str], list[Session]]


def forecast_plan(
    connection: BaseDatabaseWrapper,
    migrations: Sequence[PlannedMigration],
    *,
    rollback_on_failure: bool = False,
) -> list[MigrationForecast | None]:
    """The forecast of each migration of the plan, against ``connection``'s catalog now. None for
    a migration without SQL because the database does not exist yet.

    ``rollback_on_failure`` (the setting): a plan of transactional migrations then runs as one
    transaction, whose locks are all held until it commits."""
    names: set[str] = set()
    for migration in migrations:
        for entry in migration.sql or []:
            names |= identifiers(entry, connection.vendor)
    catalog = load_catalog(connection, names)
    lookup: BlockerLookup | None = None
    if connection.vendor == "postgresql":
        cache: dict[tuple[str, str], list[Session]] = {}

        def lookup(table: str, mode: str) -> list[Session]:
            if (table, mode) not in cache:
                cache[(table, mode)] = blockers.holding(connection, [table], mode)
            return cache[(table, mode)]

    one = rollback_on_failure and all(m.transaction for m in migrations)
    return forecast_migrations(migrations, catalog, lookup, one_transaction=one)


def forecast_migrations(
    migrations: Sequence[PlannedMigration],
    catalog: Catalog,
    blockers_now: BlockerLookup | None = None,
    *,
    one_transaction: bool = False,
) -> list[MigrationForecast | None]:
    """The forecast of each migration, judged in plan order against ``catalog`` (no database:
    the decision tests call it with a catalog of their own). ``blockers_now(table, mode)`` names
    who would block a lock now. ``one_transaction``: the whole plan runs in one transaction, so
    a lock taken by one migration is held while the later ones run."""
    judge = _Judge(catalog)
    results: list[MigrationForecast | None] = []
    for migration in migrations:
        if migration.sql is None:
            if migration.sql_error == "the database does not exist yet":
                results.append(None)
            else:
                results.append(
                    MigrationForecast(
                        UNKNOWN,
                        f"no SQL to judge: {migration.sql_error}",
                        seconds=None,
                        blockers_checked=blockers_now is not None,
                    )
                )
            continue
        statements = _statements(judge, migration.sql, blockers_now)
        results.append(_migration(catalog, migration, statements, blockers_now is not None))
    if one_transaction:
        _held_across_the_plan(catalog.vendor, results)
    return results


def _held_across_the_plan(vendor: str, results: list[MigrationForecast | None]) -> None:
    """In one transaction for the whole plan, a lock an earlier migration took is still held
    while a later one scans or rewrites: that later migration's verdict says so."""
    so_far: list[StatementForecast] = []
    for forecast in results:
        if forecast is None:
            continue
        earlier = len(so_far)
        so_far.extend(s for s in forecast.statements if s.verdict != UNKNOWN)
        if not earlier:
            continue
        level, message = _held_locks(vendor, so_far, counted_from=earlier)
        if LEVELS.index(level) > LEVELS.index(forecast.verdict if forecast.verdict in LEVELS
                                              else SAFE):  # fmt: skip
            forecast.verdict = level
            forecast.message = f"{message}, in the run's one transaction"


def forecast_sql(statements: Sequence[str], catalog: Catalog) -> list[StatementForecast]:
    """The forecasts of ``statements`` run in order against ``catalog`` (one migration's SQL)."""
    judge = _Judge(catalog)
    return _statements(judge, list(statements), None)


def _statements(
    judge: _Judge, entries: list[str], blockers_now: BlockerLookup | None
) -> list[StatementForecast]:
    forecasts = []
    description = ""
    for index, entry in enumerate(entries):
        stripped = entry.strip()
        if stripped.startswith("--"):
            if stripped == _RUN_PYTHON:
                forecasts.append(
                    StatementForecast(
                        index,
                        description or "RunPython",
                        UNKNOWN,
                        "runs Python: no SQL to judge",
                        seconds=None,
                    )
                )
            elif stripped != "--":
                description = stripped.removeprefix("--").strip()
            continue
        parts = [p for p in _split(_tokenize(entry, judge.vendor), ";") if p]
        if not parts:
            continue
        try:
            judgements = [judge.judge(part) for part in parts]
        except Exception as exc:  # SQL the parser trips on is unknown: never a failed forecast
            message = f"the forecast cannot read this statement ({type(exc).__name__})"
            forecasts.append(StatementForecast(index, "SQL", UNKNOWN, message, seconds=None))
            continue
        forecasts.append(_statement(judge.vendor, index, judgements, blockers_now))
    return forecasts


def _statement(
    vendor: str, index: int, judgements: list[_Judgement], blockers_now: BlockerLookup | None
) -> StatementForecast:
    """One SQL entry (which may hold several statements: Django writes ``UPDATE ...; SET
    CONSTRAINTS ...`` as one)."""
    judged = [j for j in judgements if not j.unknown]
    unknown = [j for j in judgements if j.unknown]
    action = " + ".join(dict.fromkeys(j.action for j in judgements))
    if not judged:
        return StatementForecast(index, action, UNKNOWN, unknown[0].unknown, seconds=None)
    tables: list[TableForecast] = []
    for judgement in judged:
        for table in judgement.tables:
            same = next((t for t in tables if t.table == table.table), None)
            if same is None:
                tables.append(table)
            else:
                same.rewrites |= table.rewrites
                same.scans |= table.scans
                same.row_locks |= table.row_locks
                same.work = max(same.work, table.work, key=_WORK_ORDER.index)
                if vendor == "postgresql" and PG_MODES.index(table.lock) > PG_MODES.index(
                    same.lock
                ):
                    same.lock = table.lock
    if blockers_now is not None:
        for table in tables:
            if table.exists and table.lock in PG_MODES:
                table.blockers_now = blockers_now(table.table, table.lock)
    levels = [(_table_verdict(vendor, t), t) for t in tables]
    bare = [j.bare_verdict for j in judged if not j.tables]
    level = worst([*bare, *(lvl for lvl, _ in levels)]) if bare or levels else SAFE
    seconds: float | None = 0.0
    for table in tables:
        if table.seconds is None:
            seconds = None
        elif seconds is not None:
            seconds += table.seconds
    notes = "; ".join(dict.fromkeys(j.note for j in judged if j.note))
    heaviest = [t for lvl, t in levels if lvl == level]
    heaviest = [t for t in heaviest if t.exists] or heaviest
    if heaviest:
        message = _table_message(vendor, max(heaviest, key=lambda t: t.seconds or 0.0), level)
        if level != SAFE and len(tables) > 1:
            message += (
                f" ({', '.join(t.table for t in tables if t.exists) or 'tables of the plan'})"
            )
        elif level == SAFE and not any(t.exists for t in tables):
            message = "only tables the plan creates: nothing to block"
    else:
        message = next((j.summary for j in judged if j.summary), "") or notes or "locks no table"
        notes = "" if message == notes else notes
    if notes:
        message += f"; {notes}"
    if unknown:
        message += f"; {unknown[0].unknown}"
    return StatementForecast(index, action, level, message, tables, seconds)


def _migration(
    catalog: Catalog,
    migration: PlannedMigration,
    statements: list[StatementForecast],
    checked: bool,
) -> MigrationForecast:
    if not statements:
        return MigrationForecast(SAFE, "runs no SQL", [], 0.0, checked)
    level = worst(s.verdict for s in statements)
    judged = [s for s in statements if s.verdict != UNKNOWN]
    seconds: float | None = 0.0
    for statement in judged:
        seconds = (
            None if statement.seconds is None or seconds is None else seconds + statement.seconds
        )
    if level == UNKNOWN:
        return MigrationForecast(UNKNOWN, statements[0].message, statements, None, checked)
    worst_statement = max((s for s in judged if s.verdict == level), key=lambda s: s.seconds or 0.0)
    message = worst_statement.message
    held_level, held_message = (
        _held_locks(catalog.vendor, judged) if migration.transaction else (SAFE, "")
    )
    if LEVELS.index(held_level) > LEVELS.index(level):
        level, message = held_level, held_message
    skipped = len(statements) - len(judged)
    if skipped:
        message += f"; {skipped} statement(s) not judged"
    if catalog.note:
        message += f"; {catalog.note}"
    return MigrationForecast(level, message, statements, seconds, checked)


def _held_locks(
    vendor: str, statements: list[StatementForecast], counted_from: int = 0
) -> tuple[str, str]:
    """In one transaction every lock is held until the commit: a lock taken early stays while
    later statements scan or rewrite. The verdict that makes, and why; only the time of the
    statements from ``counted_from`` on counts (the earlier ones only take locks)."""
    held: dict[str, TableForecast] = {}
    level, message, held_seconds = SAFE, "", 0.0
    unknown_time = False
    for number, statement in enumerate(statements):
        taking_time = number >= counted_from and (
            statement.seconds is None or statement.seconds > 0
        )
        if taking_time and held:
            blocking_reads = [
                t for t in held.values() if vendor == "postgresql" and t.lock in _READ_BLOCKING
            ]
            blocking_writes = [
                t
                for t in held.values()
                if (vendor == "postgresql" and t.lock in _WRITE_BLOCKING)
                or vendor == "sqlite"
                or t.row_locks
            ]
            if statement.seconds is None:
                unknown_time = True
            else:
                held_seconds += statement.seconds
            if blocking_reads or blocking_writes:
                new_level = BLOCKS_READS if blocking_reads else BLOCKS_WRITES
                first = (blocking_reads or blocking_writes)[0]
                what = "reads and writes" if blocking_reads else "writes"
                if LEVELS.index(new_level) >= LEVELS.index(level):
                    level = new_level
                    how_long = human_seconds(None if unknown_time else held_seconds)
                    message = (
                        f"blocks {what} for {how_long}: "
                        f"{first.lock} on {first.table} is held until the commit while later "
                        "statements run"
                    )
        for table in statement.tables:
            if table.exists:
                current = held.get(table.table)
                if current is None or _lock_rank(vendor, table.lock) > _lock_rank(
                    vendor, current.lock
                ):
                    held[table.table] = table
    return level, message


def _lock_rank(vendor: str, lock: str) -> int:
    if vendor == "postgresql" and lock in PG_MODES:
        return PG_MODES.index(lock)
    return 0

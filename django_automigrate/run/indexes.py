"""Invalid indexes on PostgreSQL: found before a run, dropped when a pending migration creates them
again (only with ``REBUILD_INVALID_INDEXES``), and reported after it.

A ``CREATE INDEX CONCURRENTLY`` that fails (cancelled, a lock timeout, duplicates for a unique
index, a killed session) leaves its index behind, marked invalid (``pg_index.indisvalid``). The
migration that failed is still pending, and its next attempt fails with "relation already exists";
meanwhile the index serves no read, and once it is ready (``indisready``) every write maintains it.

Only the invalid index that a pending migration creates again is ever dropped: that migration
rebuilds it. Any other is reported and left alone, since nothing here knows whether it is wanted.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeAlias

from django.db import Error, NotSupportedError
from django.db.backends.base.base import BaseDatabaseWrapper

from django_automigrate.run.plan import Plan

__all__ = [
    "IndexReport",
    "InvalidIndex",
    "after_run",
    "before_run",
    "collect_plan_sql",
    "drop",
    "invalid_indexes",
    "planned_index_names",
]

logger = logging.getLogger("django_automigrate")

#: The setting that lets a run drop the invalid indexes its migrations create again.
SETTING = 'AUTOMIGRATE["REBUILD_INVALID_INDEXES"] = True'

#: PostgreSQL keeps the first NAMEDATALEN - 1 bytes of an identifier.
_MAX_IDENTIFIER_BYTES = 63

# One query, whatever the number of schemas and indexes. The lock views are read only for
# invalid indexes (a CTE is computed when first scanned): a database with none never reads them.
#
# An index that a CREATE INDEX CONCURRENTLY is building right now is invalid too, and dropping
# it would make that build fail. It is left out when:
# * the progress view names it (``index_relid``), or, where that column is hidden (another
#   role's session, without pg_read_all_stats: only ``pid`` and ``datid`` are shown), when a
#   session building an index holds a SHARE UPDATE EXCLUSIVE lock on its table; the build holds
#   that lock, at session level, from start to end. Conservative: an invalid index left by an
#   earlier failure on the same table is then reported once the build ends, not now;
# * another session holds a lock stronger than reads and writes take on the index itself:
#   REINDEX CONCURRENTLY (its ``_ccnew`` copy) and DROP INDEX CONCURRENTLY do. Plain queries
#   lock invalid indexes too (the planner opens every index of a table), in weaker modes only.
# Partitioned indexes (relkind 'I') are left out: one is invalid until an index is attached for
# every partition, which is a step of its own, not a failure.
_INVALID_INDEXES_SQL = """
WITH
  this_database AS (SELECT oid FROM pg_database WHERE datname = current_database()),
  relation_locks AS (
    SELECT l.pid, l.relation, l.mode FROM pg_locks l
    WHERE l.locktype = 'relation' AND l.pid <> pg_backend_pid()
      AND l.database = (SELECT oid FROM this_database)
  ),
  builds AS (
    SELECT p.pid, p.index_relid FROM pg_stat_progress_create_index p
    WHERE p.pid <> pg_backend_pid() AND p.datid = (SELECT oid FROM this_database)
  )
SELECT n.nspname, c.relname, t.relname, pg_get_indexdef(i.indexrelid),
       pg_relation_size(i.indexrelid), i.indisready
FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_class t ON t.oid = i.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE NOT i.indisvalid
  AND c.relkind = 'i'
  AND n.nspname = ANY (current_schemas(false))
  AND NOT EXISTS (
    SELECT 1 FROM builds b
    WHERE b.index_relid = i.indexrelid
       OR (b.index_relid IS NULL AND EXISTS (
             SELECT 1 FROM relation_locks l
             WHERE l.pid = b.pid AND l.relation = i.indrelid
               AND l.mode = 'ShareUpdateExclusiveLock'))
  )
  AND NOT EXISTS (
    SELECT 1 FROM relation_locks l
    WHERE l.relation = i.indexrelid
      AND l.mode NOT IN ('AccessShareLock', 'RowShareLock', 'RowExclusiveLock')
  )
ORDER BY n.nspname, t.relname, c.relname
"""


@dataclasses.dataclass(frozen=True)
class InvalidIndex:
    """One invalid index, as the catalog describes it."""

    schema: str
    name: str
    table: str
    #: ``pg_get_indexdef``: the statement that would create it.
    definition: str
    #: Bytes on disk.
    size: int
    #: Whether writes maintain it (``indisready``): a build that failed after its first pass.
    ready: bool

    @property
    def qualified_name(self) -> str:
        return f"{_quote(self.schema)}.{_quote(self.name)}"

    @property
    def cause(self) -> str:
        """What most likely left it: REINDEX CONCURRENTLY names its copies ``<name>_ccnew``."""
        if re.search(r"_ccnew[0-9]*$", self.name):
            return "REINDEX CONCURRENTLY"
        return "CREATE INDEX CONCURRENTLY"

    def drop_sql(self) -> str:
        return f"DROP INDEX CONCURRENTLY IF EXISTS {self.qualified_name}"

    def describe(self) -> str:
        return f'invalid index "{self.name}" on {self.table} (left by a failed {self.cause})'

    def cost(self) -> str:
        """Why it matters, in a few words."""
        return "it serves no read and slows every write" if self.ready else "it serves no read"

    def advice(self) -> str:
        """What to do, when nothing is known of the pending migrations (after a run)."""
        return (
            f"{self.describe()}: {self.cost()}. A migration that creates it fails with "
            f'"already exists" until it is dropped: set {SETTING}, or run '
            f"{self.drop_sql()};"
        )

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "drop_sql": self.drop_sql()}


@dataclasses.dataclass
class IndexReport:
    """What :func:`before_run` found and did."""

    rebuild: bool
    found: list[InvalidIndex] = dataclasses.field(default_factory=list)
    #: The pending migration that creates each found index again, when one does.
    recreated_by: dict[InvalidIndex, str] = dataclasses.field(default_factory=dict)
    dropped: list[InvalidIndex] = dataclasses.field(default_factory=list)
    #: Drops that failed, with the error: the migration then fails as it would have.
    drop_errors: dict[InvalidIndex, str] = dataclasses.field(default_factory=dict)
    #: Whether the pending migrations' SQL was read (not when none was given, or none found).
    plan_read: bool = False
    #: Why nothing could be listed or the plan's SQL not read; empty otherwise.
    error: str = ""

    @property
    def kept(self) -> list[InvalidIndex]:
        return [index for index in self.found if index not in self.dropped]

    def in_the_way(self) -> dict[InvalidIndex, str]:
        """The invalid indexes still there that a pending migration creates again (it would
        fail with "already exists", or, with IF NOT EXISTS, be recorded over an invalid index),
        with that migration."""
        return {i: label for i, label in self.recreated_by.items() if i not in self.dropped}

    def refusal(self) -> str:
        """Why the run applies nothing, and what to do; "" when nothing is in the way."""
        blocking = self.in_the_way()
        if not blocking:
            return ""
        listed = "; ".join(
            f"{label} creates {index.describe()} again" for index, label in blocking.items()
        )
        drops = " ".join(f"{index.drop_sql()};" for index in blocking)
        return f"Nothing was applied: {listed}. Set {SETTING}, or run {drops}"

    def messages(self) -> list[tuple[int, str]]:
        """``(logging level, message)`` for each index found."""
        return [self._message(index) for index in self.found]

    def _message(self, index: InvalidIndex) -> tuple[int, str]:
        label = self.recreated_by.get(index)
        if index in self.dropped:
            return logging.INFO, f"dropped {index.describe()}: {label} creates it again."
        if label is None and not self.plan_read:
            return logging.WARNING, index.advice()
        if label is None:
            return logging.WARNING, (
                f"{index.describe()}: {index.cost()}. No pending migration creates it: drop it "
                f"({index.drop_sql()};) or rebuild it (REINDEX INDEX CONCURRENTLY "
                f"{index.qualified_name};)."
            )
        if index in self.drop_errors:
            return logging.WARNING, (
                f"{index.describe()}: could not drop it ({self.drop_errors[index]}); {label} "
                f'will fail with "already exists". Run {index.drop_sql()};'
            )
        return logging.WARNING, (
            f'{index.describe()}: {label} creates it again and will fail with "already exists". '
            f"Set {SETTING}, or run {index.drop_sql()};"
        )

    def log(self, alias: str) -> None:
        extra = {"database": alias}
        if self.error:
            logger.debug("automigrate: %s: invalid indexes: %s", alias, self.error)
        for level, message in self.messages():
            logger.log(level, "automigrate: %s: %s", alias, message, extra=extra)

    def to_dict(self) -> dict[str, Any]:
        return {
            "invalid_indexes": [
                {
                    **index.to_dict(),
                    "recreated_by": self.recreated_by.get(index),
                    "dropped": index in self.dropped,
                    "drop_error": self.drop_errors.get(index, ""),
                }
                for index in self.found
            ],
            "error": self.error,
        }


# --- the catalog --------------------------------------------------------------------------------


def invalid_indexes(connection: BaseDatabaseWrapper) -> list[InvalidIndex]:
    """Every invalid index in the schemas of the connection's search_path, but those being built
    (or dropped, or reindexed) by another session right now; ``[]`` on other backends."""
    if connection.vendor != "postgresql":
        return []  # MySQL/MariaDB and SQLite build an index whole or not at all
    with connection.cursor() as cursor:
        cursor.execute(_INVALID_INDEXES_SQL)
        rows = cursor.fetchall()
    return [
        InvalidIndex(
            schema=schema, name=name, table=table, definition=definition, size=size, ready=ready
        )
        for schema, name, table, definition, size, ready in rows
    ]


def drop(connection: BaseDatabaseWrapper, index: InvalidIndex) -> None:
    """``DROP INDEX CONCURRENTLY IF EXISTS``: the migration that creates the index can then run
    again, and builds it (rebuilding is the migration's job, not this module's)."""
    if connection.vendor != "postgresql":
        raise NotSupportedError("Invalid indexes exist on PostgreSQL only.")
    # CONCURRENTLY: a plain DROP INDEX takes an ACCESS EXCLUSIVE lock on the table, and while it
    # waits for the queries running there, every query that comes after queues behind it. The
    # concurrent form waits without blocking anyone, but PostgreSQL refuses it inside a
    # transaction block; an atomic block could not undo it anyway.
    assert not connection.in_atomic_block, "DROP INDEX CONCURRENTLY cannot run in atomic()."
    assert connection.get_autocommit(), "DROP INDEX CONCURRENTLY needs autocommit."
    with connection.cursor() as cursor:
        cursor.execute(index.drop_sql())


# --- which index names a migration creates ------------------------------------------------------

_IDENT = r'(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)'
_QUALIFIED = rf"(?:{_IDENT}\s*\.\s*)?{_IDENT}"
# Literals and comments hide look-alikes: Django's collected SQL has "-- Create index <name> on
# field(s) ..." before each operation. Quoted identifiers are matched first and kept as they are.
_NOISE = re.compile(
    r"""(?P<ident>"(?:[^"]|"")*")|'(?:[^']|'')*'|--[^\n]*|/\*.*?\*/"""
    r"|(?<![\w$])\$(?P<tag>\w*)\$.*?\$(?P=tag)\$",
    re.DOTALL,
)
# In the order they appear: what creates an index of a name, and what removes one. A renamed
# index frees its old name and takes the new one; a UNIQUE, PRIMARY KEY or EXCLUDE constraint
# (added to a table, or declared in CREATE TABLE) builds an index named after it.
_TOUCHES = re.compile(
    rf"\bCREATE\s+(?:UNIQUE\s+)?INDEX\s+(?:CONCURRENTLY\s+)?(?:IF\s+NOT\s+EXISTS\s+)?"
    rf"(?!(?:ON|CONCURRENTLY)\b)(?P<created>{_IDENT})\s+ON\b"
    rf"|\bCONSTRAINT\s+(?P<constraint>{_IDENT})\s+(?:UNIQUE|PRIMARY\s+KEY|EXCLUDE)\b"
    rf"|\bALTER\s+INDEX\s+(?:IF\s+EXISTS\s+)?(?P<renamed>{_QUALIFIED})\s+RENAME\s+TO\s+"
    rf"(?P<new_name>{_IDENT})"
    rf"|\bDROP\s+INDEX\s+(?:CONCURRENTLY\s+)?(?:IF\s+EXISTS\s+)?"
    rf"(?P<dropped>{_QUALIFIED}(?:\s*,\s*{_QUALIFIED})*)"
    rf"|\bDROP\s+CONSTRAINT\s+(?:IF\s+EXISTS\s+)?(?P<dropped_constraint>{_IDENT})",
    re.IGNORECASE,
)
_NAMES = re.compile(_QUALIFIED)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _identifier(token: str) -> str:
    """A name as the catalog keeps it: unquoted, folded to lower case when it was not quoted,
    cut to 63 bytes as PostgreSQL cuts it."""
    token = token.strip()
    name = token[1:-1].replace('""', '"') if token.startswith('"') else token.lower()
    return name.encode()[:_MAX_IDENTIFIER_BYTES].decode(errors="ignore")


def _last_part(qualified: str) -> str:
    parts = re.findall(_IDENT, qualified)
    return _identifier(parts[-1])


def _touches(statements: Iterable[str]) -> Iterator[tuple[bool, str]]:
    """``(creates, name)`` for each index name the statements create or remove, in order."""
    for statement in statements:
        text = _NOISE.sub(lambda m: m.group("ident") or " ", statement)
        for match in _TOUCHES.finditer(text):
            if match["created"] or match["constraint"]:
                yield True, _identifier(match["created"] or match["constraint"])
            elif match["renamed"]:
                yield False, _last_part(match["renamed"])
                yield True, _identifier(match["new_name"])
            elif match["dropped"]:
                for name in _NAMES.findall(match["dropped"]):
                    yield False, _last_part(name)
            else:
                yield False, _identifier(match["dropped_constraint"])


def planned_index_names(statements: Iterable[str]) -> set[str]:
    """The index names the statements create while an index of that name would be in the way:
    a name the statements remove first (``DROP INDEX IF EXISTS``, a rename away) is not
    listed, since they clear it themselves."""
    first: dict[str, bool] = {}
    for creates, name in _touches(statements):
        first.setdefault(name, creates)
    return {name for name, creates in first.items() if creates}


def _recreating_migrations(
    plan_sql: Mapping[str, Sequence[str]], names: set[str]
) -> dict[str, str]:
    """For each of ``names``: the first migration of the plan whose SQL creates it, when no
    earlier one removed it first (then that migration takes care of it)."""
    found: dict[str, str] = {}
    settled: set[str] = set()
    for label, statements in plan_sql.items():
        for creates, name in _touches(statements):
            if name in names and name not in settled:
                settled.add(name)
                if creates:
                    found[name] = label
    return found


def collect_plan_sql(connection: BaseDatabaseWrapper, plan: Plan) -> dict[str, list[str]]:
    """The SQL each migration of ``plan`` would run, by label, in plan order. A migration whose
    SQL cannot be generated in advance (some introspect tables that earlier ones of the plan
    create, as sqlmigrate does) is left out: it is then taken to create no index.

    This costs a migration graph and a rendered project state: :func:`before_run` asks for it
    only when an invalid index exists.
    """
    from django_automigrate.run.sqlplan import plan_sql

    return {each.label: each.sql for each in plan_sql(connection, plan) if each.sql is not None}


# --- the run ------------------------------------------------------------------------------------

#: Each pending migration's SQL by label, in plan order, or a function that returns it.
PlanSql: TypeAlias = Mapping[str, Sequence[str]] | Callable[[], Mapping[str, Sequence[str]]]


def before_run(
    connection: BaseDatabaseWrapper, plan_sql: PlanSql | None, *, rebuild: bool
) -> IndexReport:
    """List the invalid indexes; with ``rebuild``, drop those that a pending migration creates
    again, so that it can. Call it outside any transaction, before applying the plan.

    ``plan_sql``: each pending migration's SQL by label, in plan order, or a function returning
    it, called only when an invalid index exists (:func:`collect_plan_sql` makes it); None when
    unknown (then nothing is dropped). Never raises for a database error: what could not be
    listed or dropped is in the report, and the run goes on as it would have without this step.
    """
    report = IndexReport(rebuild=rebuild)
    if connection.vendor != "postgresql":
        return report
    try:
        report.found = invalid_indexes(connection)
    except Error as exc:
        if connection.in_atomic_block:
            raise  # the transaction is broken: its owner must know
        report.error = _first_line(exc)
        return report
    if not report.found or plan_sql is None:
        return report
    try:
        sql = plan_sql() if callable(plan_sql) else plan_sql
    except Error as exc:  # the migration loader reads django_migrations
        report.error = _first_line(exc)
        return report
    report.plan_read = True
    by_name = _recreating_migrations(sql, {index.name for index in report.found})
    for index in report.found:
        label = by_name.get(index.name)
        if label is None:
            continue  # no migration rebuilds it: never touched, only reported
        report.recreated_by[index] = label
        if not rebuild:
            continue
        try:
            drop(connection, index)
        except Error as exc:
            report.drop_errors[index] = _first_line(exc)
        else:
            report.dropped.append(index)
    return report


def after_run(
    connection: BaseDatabaseWrapper, *, before: IndexReport | None = None
) -> list[InvalidIndex]:
    """The invalid indexes after a run (a failed one may have left one), but those ``before``
    already reported and kept; ``[]`` when they cannot be listed (never raises for that)."""
    try:
        found = invalid_indexes(connection)
    except Error as exc:
        if connection.in_atomic_block:
            raise
        logger.debug("automigrate: %s: invalid indexes not listed: %s", connection.alias, exc)
        return []
    known = set(before.kept) if before is not None else set()
    return [index for index in found if index not in known]


def listed_quietly(connection: BaseDatabaseWrapper) -> list[InvalidIndex] | None:
    """:func:`invalid_indexes`, or None when they cannot be listed (a lost connection says so
    itself, in the run's next statement)."""
    try:
        return invalid_indexes(connection)
    except Error as exc:
        logger.debug("automigrate: %s: invalid indexes not listed: %s", connection.alias, exc)
        return None


def left_behind(
    connection: BaseDatabaseWrapper, before: Sequence[InvalidIndex] | None
) -> list[InvalidIndex]:
    """The invalid indexes that were not there ``before`` a failed attempt: its own, since the
    run holds the migration lock and builds being made by others are never listed. None when
    ``before`` is unknown: then no index can be told to be the attempt's own."""
    if connection.vendor != "postgresql" or before is None:
        return []
    known = {(index.schema, index.name) for index in before}
    return [i for i in listed_quietly(connection) or [] if (i.schema, i.name) not in known]


def drop_left_behind(
    connection: BaseDatabaseWrapper, leftovers: list[InvalidIndex]
) -> Error | None:
    """Drop the invalid indexes a failed attempt left, before the next attempt builds them again
    (it would fail with "already exists"); those dropped leave ``leftovers``. The error that
    stopped a drop (a lock timeout, when the blocker is still there), or None."""
    while leftovers:
        try:
            drop(connection, leftovers[0])
        except Error as exc:
            return exc
        logger.info(
            "automigrate: %s: dropped %s, left invalid by the attempt that gave up",
            connection.alias,
            leftovers.pop(0).describe(),
            extra={"database": connection.alias},
        )
    return None


def _first_line(exc: BaseException) -> str:
    """The error's own line, without the DETAIL and HINT lines PostgreSQL adds."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]

"""The fleet registry: which code the processes using a database are running.

Each serving process (and each worker that joins, :func:`django_automigrate.join_fleet`) keeps
one :class:`~django_automigrate.models.FleetMember` row, renewed by its heartbeat. What a row
says about the code is read from the migration files on disk, without importing them: a
fingerprint of every migration name, and each app's latest name. Django numbers migrations
(``0007_…``), so a process whose latest name in an app sorts before a migration's name does not
have that migration: that is how "older code" is told apart.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import os
import socket
from collections.abc import Iterable
from typing import Any

from django.db import Error, connections
from django.utils import timezone

from django_automigrate.models import FleetMember
from django_automigrate.run.history import release_label
from django_automigrate.run.uptodate import disk_migration_names

#: Rows not seen for this long are deleted by the next heartbeat that prunes.
FORGET_AFTER = datetime.timedelta(days=1)


@dataclasses.dataclass(frozen=True)
class Code:
    """The code a process runs, as the registry compares it."""

    graph: str
    #: Each app's latest migration name on disk.
    leaves: dict[str, str]

    @classmethod
    def on_disk(cls) -> Code:
        names = disk_migration_names()
        listing = "\n".join(f"{app}.{name}" for app in sorted(names) for name in sorted(names[app]))
        graph = hashlib.sha256(listing.encode()).hexdigest()[:16]
        return cls(graph, {app: max(found) for app, found in names.items() if found})

    def lacks(self, label: str) -> bool:
        """Whether this code does not have migration ``label`` (``app.name``) yet."""
        app, _, name = label.partition(".")
        latest = self.leaves.get(app)
        # An app this code does not have is one it does not use: its tables are no concern.
        return latest is not None and latest < name


@dataclasses.dataclass(frozen=True)
class Identity:
    """This process, as its row names it."""

    key: str
    host: str
    pid: int
    kind: str
    release: str
    code: Code
    started_at: datetime.datetime

    @classmethod
    def current(cls, kind: str, code: Code | None = None) -> Identity:
        host, pid, now = socket.gethostname()[:255], os.getpid(), timezone.now()
        key = f"{host[:40]}:{pid}:{now.timestamp():.3f}"[:64]
        return cls(key, host, pid, kind[:50], release_label(), code or Code.on_disk(), now)


def beat(identity: Identity, using: str) -> None:
    """Renew this process's row (written afresh when it is missing: pruned, or the table is
    new). One UPDATE in the usual case. Raises the database's error."""
    now = timezone.now()
    members = FleetMember.objects.using(using)
    if members.filter(key=identity.key).update(last_seen=now, stopped_at=None):
        return
    members.update_or_create(
        key=identity.key,
        defaults={
            "host": identity.host,
            "pid": identity.pid,
            "kind": identity.kind,
            "release": identity.release,
            "graph": identity.code.graph,
            "leaves": identity.code.leaves,
            "started_at": identity.started_at,
            "last_seen": now,
            "stopped_at": None,
        },
    )


def leave(identity: Identity, using: str) -> None:
    """Mark this process stopped: the contract step stops waiting for it at once."""
    now = timezone.now()
    FleetMember.objects.using(using).filter(key=identity.key).update(last_seen=now, stopped_at=now)


def prune(using: str) -> int:
    """Forget rows not seen for :data:`FORGET_AFTER`; how many were deleted."""
    cutoff = timezone.now() - FORGET_AFTER
    deleted, _ = FleetMember.objects.using(using).filter(last_seen__lt=cutoff).delete()
    return deleted


def members(using: str) -> list[FleetMember]:
    """Every row, the most recently seen first."""
    return list(FleetMember.objects.using(using).order_by("-last_seen", "id"))


def table_exists(using: str) -> bool:
    connection = connections[using]
    try:
        with connection.cursor() as cursor:
            return FleetMember._meta.db_table in connection.introspection.table_names(cursor)
    except Error:
        return False


def code_of(member: FleetMember) -> Code:
    leaves = member.leaves if isinstance(member.leaves, dict) else {}
    return Code(member.graph, {str(app): str(name) for app, name in leaves.items()})


def is_live(member: FleetMember, now: datetime.datetime, expiry: float) -> bool:
    """Still running: not stopped, and seen within ``expiry`` seconds."""
    return member.stopped_at is None and (now - member.last_seen).total_seconds() <= expiry


def lacking(label: str, found: Iterable[FleetMember]) -> list[FleetMember]:
    """The members whose code does not have migration ``label``."""
    return [member for member in found if code_of(member).lacks(label)]


def as_dict(member: FleetMember, expiry: float) -> dict[str, Any]:
    """A member as the JSON of ``--fleet`` and ``--contract --dry-run`` show it."""
    return {
        "host": member.host,
        "pid": member.pid,
        "kind": member.kind,
        "release": member.release,
        "graph": member.graph,
        "leaves": member.leaves,
        "started_at": member.started_at.isoformat(),
        "last_seen": member.last_seen.isoformat(),
        "stopped_at": member.stopped_at.isoformat() if member.stopped_at else None,
        "live": is_live(member, timezone.now(), expiry),
    }

"""How the cost of "nothing to do" grows with the number of migrations, and what a crowd of
processes that start together does to PostgreSQL.

    python benchmarks/scale.py [--sizes 50,500,2000] [--apps 50] [--databases sqlite,postgresql]
        [--rounds 7] [--calls 20] [--race 64,256] [--race-migrations 500]
        [--race-lock-timeout 600] [--postgres-url URL] [--keep]

For each size, a throwaway project (settings, ``manage.py``, ``wsgi.py`` and apps ``app00`` …,
each with a chain of migrations and cross-app dependencies on earlier apps) is written to a
folder ``scale-*`` in the temporary directory, compiled to bytecode as in a container image, and
migrated once on a SQLite file and on a fresh PostgreSQL database. Then, with nothing to do:

1. whole processes, timed from outside (median of interleaved rounds after a warm-up round):
   a bare ``django.setup()``, ``migrate``, ``automigrate`` (with and without ``--skip-checks``),
   and a WSGI server's start (``get_wsgi_application()``) with the startup run on and off;
2. calls inside a fresh process each, first call and later ones, with the memory they add:
   ``run.uptodate.check`` (reported n/a if this checkout has none), Django's plan
   (``run.plan.pending_work``), the floor (listing the migration folders and one query of
   ``django_migrations``) and the health check;
3. on PostgreSQL, a race: N ``manage.py automigrate`` started together on an empty database,
   with ``pg_stat_activity`` sampled every 20 ms, next to its baseline (one ``migrate`` of the
   same plan, plus N bare ``django.setup()`` started together). ``--race ''`` skips it.

Progress goes to stderr; the results are markdown tables on stdout. The PostgreSQL databases
made here (``scale_*``) are dropped at the end. Run by hand; the numbers belong in notes and
docs, never in assertions.
"""

from __future__ import annotations

import argparse
import collections
import compileall
import contextlib
import dataclasses
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pgserver import PostgresServer

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
PROJECT_PACKAGE = "scaleproject"
HOLDER_PREFIX = "django-automigrate "  # the lock holder's application_name on PostgreSQL
SAMPLE_SECONDS = 0.02
ATTRIBUTE_SECONDS = 1.0

# --- the generated project ------------------------------------------------------------------------

MANAGE = """#!/usr/bin/env python
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scaleproject.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
"""

SETTINGS = """import json
import os

SECRET_KEY = "scale-benchmark"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
ROOT_URLCONF = "scaleproject.urls"
TEMPLATES = [{{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}}]
INSTALLED_APPS = {apps!r}
# One project serves every database: the benchmark passes the DATABASES entry as JSON.
DATABASES = {{"default": json.loads(os.environ["SCALE_DATABASE"])}}
"""

URLS = """from django.urls import path
from health_check.views import HealthCheckView

urlpatterns = [
    path(
        "health/ready/",
        HealthCheckView.as_view(
            checks=["health_check.checks.Database", "django_automigrate.health.Migrations"]
        ),
        name="health-ready",
    ),
]
"""

WSGI = """import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scaleproject.settings")
application = get_wsgi_application()
"""

MIGRATION = """import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = {initial}
    dependencies = {dependencies!r}

    operations = [
{operation}
    ]
"""

CREATE_MODEL = """        migrations.CreateModel(
            name="Item{number}",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("name", models.CharField(max_length=50)),{parent}
            ],
        ),"""

PARENT_FIELD = """
                (
                    "parent",
                    models.ForeignKey(
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="{target}",
                    ),
                ),"""

ADD_FIELD = """        migrations.AddField(
            model_name="item{number}",
            name="{field}",
            field=models.{definition},
        ),"""

#: The fields AddField adds, in turn: (migration spelling, models.py spelling).
FIELD_KINDS = (
    ("IntegerField(default=0)", "models.IntegerField(default=0)"),
    ("CharField(default='', max_length=20)", "models.CharField(default='', max_length=20)"),
    ("BooleanField(default=False)", "models.BooleanField(default=False)"),
)


def app_label(index: int) -> str:
    return f"app{index:02d}"


def creates_model(number: int) -> bool:
    """Every fourth migration of an app creates a model; the others add a field to one."""
    return number % 4 == 1


def models_before(number: int) -> int:
    """How many models an app has once its migration ``number`` is applied."""
    return (number - 1) // 4 + 1


def migration_name(number: int) -> str:
    if creates_model(number):
        return f"{number:04d}_item{models_before(number)}"
    return f"{number:04d}_item{field_target(number)}_f{number:04d}"


def field_target(number: int) -> int:
    """The earlier model migration ``number`` adds its field to (spread over them all)."""
    return (number * 7) % models_before(number) + 1


def migration_counts(size: int, apps: int) -> list[int]:
    base, extra = divmod(size, apps)
    return [base + (1 if index < extra else 0) for index in range(apps)]


def parent_app(index: int) -> int:
    """The earlier app whose first model an app's first model points at: a binary tree, so
    the graph is deep and acyclic, as in a project whose apps build on each other."""
    return (index - 1) // 2


def dependencies(index: int, number: int, counts: Sequence[int]) -> list[tuple[str, str]]:
    label = app_label(index)
    found: list[tuple[str, str]] = []
    if number > 1:
        found.append((label, migration_name(number - 1)))
    elif index > 0:
        found.append((app_label(parent_app(index)), migration_name(1)))
    if index > 0 and number % 5 == 0:
        # Now and then a dependency on the previous app's migration of about the same age.
        found.append((app_label(index - 1), migration_name(min(number, counts[index - 1]))))
    return found


def migration_source(index: int, number: int, counts: Sequence[int]) -> str:
    if creates_model(number):
        parent = ""
        if number == 1 and index > 0:
            parent = PARENT_FIELD.format(target=f"{app_label(parent_app(index))}.item1")
        operation = CREATE_MODEL.format(number=models_before(number), parent=parent)
    else:
        definition = FIELD_KINDS[number % len(FIELD_KINDS)][0]
        operation = ADD_FIELD.format(
            number=field_target(number), field=f"f{number:04d}", definition=definition
        )
    return MIGRATION.format(
        initial=number == 1,
        dependencies=dependencies(index, number, counts),
        operation=operation,
    )


def models_source(index: int, count: int) -> str:
    """``models.py`` matching the app's migrations, so that ``migrate`` finds no changes."""
    fields: dict[int, list[str]] = collections.defaultdict(list)
    for number in range(1, count + 1):
        if creates_model(number):
            model = models_before(number)
            fields[model].append("name = models.CharField(max_length=50)")
            if number == 1 and index > 0:
                target = f"{app_label(parent_app(index))}.Item1"
                fields[model].append(
                    f'parent = models.ForeignKey("{target}", models.CASCADE, null=True, '
                    'related_name="+")'
                )
        else:
            spelling = FIELD_KINDS[number % len(FIELD_KINDS)][1]
            fields[field_target(number)].append(f"f{number:04d} = {spelling}")
    classes = [
        f"class Item{model}(models.Model):\n" + "".join(f"    {line}\n" for line in lines)
        for model, lines in sorted(fields.items())
    ]
    return "from django.db import models\n\n\n" + "\n\n".join(classes)


def write_project(root: Path, size: int, apps: int) -> Path:
    """The project of ``size`` migrations over ``apps`` apps, in ``root``; compiled."""
    apps = max(1, min(apps, size))
    counts = migration_counts(size, apps)
    labels = [app_label(index) for index in range(apps)]
    installed = [
        "django.contrib.contenttypes",
        "django.contrib.auth",
        "django_automigrate",
        "health_check",
        *labels,
    ]
    package = root / PROJECT_PACKAGE
    package.mkdir(parents=True)
    (root / "manage.py").write_text(MANAGE)
    (package / "__init__.py").write_text("")
    (package / "settings.py").write_text(SETTINGS.format(apps=installed))
    (package / "urls.py").write_text(URLS)
    (package / "wsgi.py").write_text(WSGI)
    for index, count in enumerate(counts):
        app = root / app_label(index)
        (app / "migrations").mkdir(parents=True)
        (app / "__init__.py").write_text("")
        (app / "models.py").write_text(models_source(index, count))
        (app / "migrations" / "__init__.py").write_text("")
        for number in range(1, count + 1):
            source = migration_source(index, number, counts)
            (app / "migrations" / f"{migration_name(number)}.py").write_text(source)
    # A container image ships its bytecode: no measured process compiles anything.
    compileall.compile_dir(str(root), quiet=1)
    return root


# --- databases ------------------------------------------------------------------------------------


@dataclasses.dataclass
class Project:
    """One generated project on one database."""

    size: int
    vendor: str
    root: Path
    database: dict[str, Any]
    #: Why the project could not be set up ("" when it could).
    error: str = ""
    setup_seconds: float = 0.0

    @property
    def key(self) -> str:
        return f"{self.size} · {self.vendor}"


def child_env(database: dict[str, Any], **automigrate: str) -> dict[str, str]:
    """The environment of a measured process: this one's, without any AUTOMIGRATE_* (or other
    variable that changes what a process decides at startup), plus ``automigrate``."""
    dropped = ("DJANGO_SETTINGS_MODULE", "PYTEST_VERSION", "RUN_MAIN", "SERVER_SOFTWARE")
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("AUTOMIGRATE_") and name not in dropped
    }
    env["DJANGO_SETTINGS_MODULE"] = f"{PROJECT_PACKAGE}.settings"
    env["SCALE_DATABASE"] = json.dumps(database)
    env.update({f"AUTOMIGRATE_{key}": value for key, value in automigrate.items()})
    return env


def run(project: Project, argv: Sequence[str], env: dict[str, str]) -> tuple[float, Any]:
    """(wall seconds, the finished process) of ``python argv`` in the project's folder."""
    started = time.perf_counter()
    done = subprocess.run(
        [PYTHON, *argv], cwd=project.root, env=env, capture_output=True, text=True, check=False
    )
    return time.perf_counter() - started, done


def last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""


def set_up(project: Project, server: PostgresServer | None) -> None:
    """A fresh database with every migration applied by a plain ``migrate``."""
    if project.vendor == "postgresql":
        assert server is not None
        server.create(project.database["NAME"])
    else:
        Path(project.database["NAME"]).unlink(missing_ok=True)
    seconds, done = run(project, ["manage.py", "migrate", "-v", "0"], child_env(project.database))
    project.setup_seconds = seconds
    if done.returncode:
        project.error = f"migrate failed (exit {done.returncode}): {last_line(done.stderr)}"


# --- 1. whole processes ---------------------------------------------------------------------------

STARTUP_STATE = (
    "import {module}; from django_automigrate import startup; s = startup.state(); "
    "print('SCALE-STATE', s.status, ','.join(r.status for r in s.result.databases) "
    "if s.result else '-', s.error or '')"
)


@dataclasses.dataclass(frozen=True)
class Variant:
    label: str
    argv: tuple[str, ...]
    automigrate: tuple[tuple[str, str], ...] = ()
    #: What the process's stdout must hold for the sample to count (proof of what it did).
    expect: str = ""


ON = (("ON_STARTUP", "true"), ("IN_PRODUCTION", "true"))
OFF = (("ENABLED", "false"),)

VARIANTS = (
    Variant("bare `django.setup()`", ("-c", "import django; django.setup()"), OFF),
    Variant("`migrate`", ("manage.py", "migrate"), expect="No migrations to apply"),
    Variant(
        "`migrate --skip-checks`",
        ("manage.py", "migrate", "--skip-checks"),
        expect="No migrations to apply",
    ),
    Variant("`automigrate`", ("manage.py", "automigrate"), expect="up to date"),
    Variant(
        "`automigrate --skip-checks`",
        ("manage.py", "automigrate", "--skip-checks"),
        (),
        "up to date",
    ),
    Variant(
        "WSGI start, startup run on",
        ("-c", STARTUP_STATE.format(module=f"{PROJECT_PACKAGE}.wsgi")),
        ON,
        "SCALE-STATE succeeded nothing_to_do",
    ),
    Variant(
        "WSGI start, startup run off",
        ("-c", STARTUP_STATE.format(module=f"{PROJECT_PACKAGE}.wsgi")),
        OFF,
        "SCALE-STATE skipped",
    ),
)


@dataclasses.dataclass
class Samples:
    seconds: list[float] = dataclasses.field(default_factory=list)
    #: Samples left out (the process failed, or did not prove it did what it should), and why
    #: the first of them was.
    failed: int = 0
    problem: str = ""

    def median(self) -> float | None:
        return statistics.median(self.seconds) if self.seconds else None


def time_processes(project: Project, rounds: int) -> dict[str, Samples]:
    """Every variant once per round, round after round; the first round is a warm-up."""
    samples = {variant.label: Samples() for variant in VARIANTS}
    for round_number in range(rounds + 1):
        for variant in VARIANTS:
            env = child_env(project.database, **dict(variant.automigrate))
            seconds, done = run(project, variant.argv, env)
            sample = samples[variant.label]
            if done.returncode or variant.expect not in done.stdout:
                # The product changes under the benchmark: a failure is reported, not fatal.
                sample.failed += 1
                sample.problem = sample.problem or (
                    f"exit {done.returncode}: {last_line(done.stderr) or last_line(done.stdout)}"
                )
            elif round_number:
                sample.seconds.append(seconds)
        progress(f"  {project.key}: round {round_number}/{rounds} done")
    return samples


# --- 2. calls in a fresh process ------------------------------------------------------------------

#: Run in a fresh process (``python -c PROBE WHAT MODE CALLS``). MODE ``time``: the first call
#: and the median of CALLS later ones, and how much the first raised ru_maxrss; ``memory``: the
#: tracemalloc peak of the first call (measured apart: tracing slows every allocation).
PROBE = r"""
import gc, json, os, resource, statistics, sys, time

import django

django.setup()
from django.apps import apps
from django.db import connection

what, mode, calls = sys.argv[1], sys.argv[2], int(sys.argv[3])
open_before = True

if what == "uptodate":
    try:
        from django_automigrate.run.uptodate import check as uptodate_check
    except ImportError as exc:
        print("SCALE-RESULT", json.dumps({"missing": f"{type(exc).__name__}: {exc}"}))
        sys.exit(0)

    def call():
        answer = uptodate_check(connection)
        return f"up_to_date={answer.up_to_date} {answer.reason}".strip()

elif what == "plan":
    from django_automigrate.run.plan import pending_work

    def call():
        return f"{len(pending_work(connection).plan)} pending"

elif what == "floor":
    def call():
        files = 0
        for config in apps.get_app_configs():
            folder = os.path.join(config.path, "migrations")
            if os.path.isdir(folder):
                files += len(os.listdir(folder))
        with connection.cursor() as cursor:
            cursor.execute("SELECT app, name FROM django_migrations")
            rows = cursor.fetchall()
        return f"{files} files, {len(rows)} rows"

else:  # health, health-open
    from health_check.exceptions import HealthCheckException

    from django_automigrate.health import Migrations

    check = Migrations()
    # "health": as in django-health-check's pool thread, where no connection is open before
    # a call (and the check closes what it opened); "health-open": one stays open.
    open_before = what == "health-open"

    def call():
        try:
            check.run()
        except HealthCheckException as exc:
            return f"unhealthy: {exc}"
        return "healthy"


def prepare():
    if open_before:
        connection.ensure_connection()
    else:
        connection.close()


def timed():
    prepare()
    started = time.perf_counter()
    outcome = call()
    return time.perf_counter() - started, outcome


gc.collect()
if mode == "memory":
    import tracemalloc

    prepare()
    tracemalloc.start()
    outcome = call()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    result = {"peak": peak, "outcome": outcome}
else:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    first, outcome = timed()
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    later = [timed()[0] for _ in range(calls)]
    result = {
        "first": first,
        "later": statistics.median(later) if later else None,
        "maxrss_kib": grown,
        "outcome": outcome,
    }
connection.close()
print("SCALE-RESULT", json.dumps(result))
"""

#: (key, label, later calls as a share of --calls): the plan is slow, so it is called less.
PROBES = (
    ("uptodate", "`uptodate.check`", 1.0),
    ("plan", "`plan.pending_work`", 0.25),
    ("floor", "floor: list folders + `SELECT app, name`", 1.0),
    ("health", "health check, own connection per call", 1.0),
    ("health-open", "health check, connection kept open", 1.0),
)


#: What each call answers when nothing is pending; any other answer is noted under the tables.
EXPECTED_OUTCOMES = {
    "uptodate": "up_to_date=True",
    "plan": "0 pending",
    "health": "healthy",
    "health-open": "healthy",
}


@dataclasses.dataclass
class Probe:
    first: float | None = None
    later: float | None = None
    maxrss_kib: int | None = None
    peak: int | None = None
    outcome: str = ""
    missing: str = ""
    problem: str = ""


def probe(project: Project, what: str, calls: int) -> Probe:
    found = Probe()
    env = child_env(project.database, **dict(OFF))
    for mode in ("time", "memory"):
        _, done = run(project, ["-c", PROBE, what, mode, str(calls)], env)
        line = next((x for x in done.stdout.splitlines() if x.startswith("SCALE-RESULT ")), "")
        if done.returncode or not line:
            found.problem = f"exit {done.returncode}: {last_line(done.stderr)}"
            return found
        data = json.loads(line.split(" ", 1)[1])
        if "missing" in data:
            found.missing = data["missing"]
            return found
        for name in ("first", "later", "maxrss_kib", "peak", "outcome"):
            if name in data:
                setattr(found, name, data[name])
    return found


def probe_all(project: Project, calls: int) -> dict[str, Probe]:
    return {key: probe(project, key, max(3, round(calls * share))) for key, _, share in PROBES}


# --- 3. the race ----------------------------------------------------------------------------------

#: Every client connection of the server: the race's database is told apart in Python, and the
#: others count towards max_connections too (the sampler's own included).
SAMPLE_SQL = """
SELECT pid, application_name, state, left(regexp_replace(query, '\\s+', ' ', 'g'), 70),
       client_port, datname
FROM pg_stat_activity WHERE backend_type = 'client backend'
"""


@dataclasses.dataclass
class Activity:
    """What the sampler saw of one database's connections."""

    samples: int = 0
    peak_total: int = 0
    #: Every database's connections together, against the server's max_connections.
    peak_server: int = 0
    peak_waiters: int = 0
    #: The waiters' last statements at their peak, most common first.
    waiter_queries: list[tuple[str, int]] = dataclasses.field(default_factory=list)
    #: Most connections one waiting process held at once, and what they last ran then.
    most_per_waiter: int = 0
    most_per_waiter_queries: list[str] = dataclasses.field(default_factory=list)
    error: str = ""


def socket_owners(pids: Sequence[int]) -> dict[int, int]:
    """Local TCP port → the pid (among ``pids``) whose socket it is, from Linux's /proc."""
    owner_of_inode: dict[int, int] = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if target.startswith("socket:["):
                        owner_of_inode[int(target[8:-1])] = pid
    owners: dict[int, int] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                owner = owner_of_inode.get(int(fields[9]))
                if owner is not None:
                    owners[int(fields[1].rsplit(":", 1)[1], 16)] = owner
    return owners


class Sampler(threading.Thread):
    """Samples ``pg_stat_activity`` for one database every 20 ms, from a connection to another
    database (so it never counts itself); every second it also finds which child process holds
    each connection (by its client port), to see whether a waiter holds more than one."""

    def __init__(self, server: PostgresServer, name: str) -> None:
        super().__init__(name="scale-sampler", daemon=True)
        self.server = server
        self.database = name
        self.pids: list[int] = []
        self.activity = Activity()
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            with self.server.connect() as sampler:
                attributed_at = 0.0
                while not self.stop.is_set():
                    new_peak = self.record(sampler.execute(SAMPLE_SQL).fetchall())
                    # The waiters' connections come and go within milliseconds: look at whose
                    # they are at each new peak, and once a second (it costs CPU the race needs).
                    due = time.monotonic() - attributed_at >= ATTRIBUTE_SECONDS
                    if self.pids and (new_peak or due):
                        owners = socket_owners(self.pids)
                        self.attribute(self.mine(sampler.execute(SAMPLE_SQL).fetchall()), owners)
                        attributed_at = time.monotonic()
                    self.stop.wait(SAMPLE_SECONDS)
        except Exception as exc:
            self.activity.error = f"{type(exc).__name__}: {exc}"

    def mine(self, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        return [row for row in rows if row[5] == self.database]

    def record(self, server_rows: list[tuple[Any, ...]]) -> bool:
        """Count one sample; True when the waiters hold more connections than ever before."""
        seen = self.activity
        seen.samples += 1
        seen.peak_server = max(seen.peak_server, len(server_rows))
        rows = self.mine(server_rows)
        waiters = [row for row in rows if not str(row[1] or "").startswith(HOLDER_PREFIX)]
        seen.peak_total = max(seen.peak_total, len(rows))
        if len(waiters) <= seen.peak_waiters:
            return False
        seen.peak_waiters = len(waiters)
        queries = collections.Counter(f"{row[2]}: {row[3]}" for row in waiters)
        seen.waiter_queries = queries.most_common(4)
        return True

    def attribute(self, rows: list[tuple[Any, ...]], owners: dict[int, int]) -> None:
        """Which process holds each connection (by client port), the holder's left out."""
        holder_pids = {
            int(str(row[1]).rsplit(" ", 1)[1])
            for row in rows
            if str(row[1] or "").startswith(HOLDER_PREFIX) and str(row[1]).split()[-1].isdigit()
        }
        by_process: dict[int, list[str]] = collections.defaultdict(list)
        for row in rows:
            owner = owners.get(row[4]) if row[4] is not None else None
            if owner is not None and owner not in holder_pids:
                by_process[owner].append(f"{row[2]}: {row[3]}")
        for queries in by_process.values():
            if len(queries) > self.activity.most_per_waiter:
                self.activity.most_per_waiter = len(queries)
                self.activity.most_per_waiter_queries = queries


@dataclasses.dataclass
class Crowd:
    """N processes started together."""

    count: int
    wall: float = 0.0
    exit_codes: dict[int, int] = dataclasses.field(default_factory=dict)
    statuses: dict[str, int] = dataclasses.field(default_factory=dict)
    applied_by: int = 0
    too_many_clients: int = 0
    history: list[tuple[str, int, int, float]] = dataclasses.field(default_factory=list)
    activity: Activity | None = None
    errors: list[tuple[str, int]] = dataclasses.field(default_factory=list)


def start_together(
    project: Project, argv: Sequence[str], env: dict[str, str], count: int, folder: Path
) -> tuple[list[subprocess.Popen[bytes]], float]:
    """``count`` processes of ``python argv``, each writing to files in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    processes = []
    started = time.perf_counter()
    for index in range(count):
        with (
            open(folder / f"{index}.out", "wb") as out,
            open(folder / f"{index}.err", "wb") as err,
        ):
            processes.append(
                subprocess.Popen([PYTHON, *argv], cwd=project.root, env=env, stdout=out, stderr=err)
            )
    return processes, started


def wait_all(processes: Sequence[subprocess.Popen[bytes]], started: float) -> float:
    for process in processes:
        process.wait()
    return time.perf_counter() - started


def crowd_of_setups(project: Project, count: int, folder: Path) -> Crowd:
    """Baseline (b): ``count`` bare ``django.setup()`` started together."""
    env = child_env(project.database, **dict(OFF))
    argv = ("-c", "import django; django.setup()")
    processes, started = start_together(project, argv, env, count, folder)
    crowd = Crowd(count, wall=wait_all(processes, started))
    crowd.exit_codes = dict(collections.Counter(p.returncode for p in processes))
    return crowd


def race(
    project: Project, server: PostgresServer, count: int, folder: Path, lock_timeout: float
) -> Crowd:
    """``count`` ``manage.py automigrate`` on an empty database, started together."""
    name = project.database["NAME"]
    server.create(name)
    sampler = Sampler(server, name)
    sampler.start()
    argv = ("manage.py", "automigrate", "--lock-timeout", f"{lock_timeout:g}", "--format", "json")
    processes, started = start_together(project, argv, child_env(project.database), count, folder)
    sampler.pids = [process.pid for process in processes]
    crowd = Crowd(count, wall=wait_all(processes, started))
    sampler.stop.set()
    sampler.join()
    crowd.activity = sampler.activity
    crowd.exit_codes = dict(collections.Counter(p.returncode for p in processes))
    read_outcomes(crowd, folder)
    crowd.history = history_rows(server, name)
    return crowd


def read_outcomes(crowd: Crowd, folder: Path) -> None:
    statuses: collections.Counter[str] = collections.Counter()
    errors: collections.Counter[str] = collections.Counter()
    for index in range(crowd.count):
        out = (folder / f"{index}.out").read_text(errors="replace")
        err = (folder / f"{index}.err").read_text(errors="replace")
        if "too many clients" in out + err:
            crowd.too_many_clients += 1
        try:
            document = json.loads(out)
        except ValueError:
            statuses["(no JSON)"] += 1
            errors[last_line(err) or last_line(out) or "(no output)"] += 1
            continue
        for database in document.get("databases", []):
            status = str(database.get("status", "?"))
            if status == "failed":
                # A plan was made (and is reported) only by a run that got past planning: then
                # it failed while waiting for the lock or under it.
                status += " after planning" if database.get("planned") else " before planning"
            statuses[status] += 1
            if database.get("applied"):
                crowd.applied_by += 1
            if database.get("error"):
                errors[short_error(database["error"])] += 1
        if "error" in document:
            statuses["(refused)"] += 1
            errors[short_error(document["error"])] += 1
    crowd.statuses = dict(statuses)
    crowd.errors = errors.most_common(3)


def short_error(error: object) -> str:
    """An error message with its numbers of seconds blurred, so that alike errors count as one."""
    text = re.sub(r"\d+(\.\d+)?s\b", "Ns", str(error))
    return text[:220]


def history_rows(server: PostgresServer, name: str) -> list[tuple[str, int, int, float]]:
    """(status, runs, migrations applied, longest duration in seconds) of the run history: how
    long the run that applied took under the crowd, next to the lone ``migrate``."""
    try:
        with server.connect(name) as connection:
            rows = connection.execute(
                "SELECT status, count(*), coalesce(sum(jsonb_array_length(applied)), 0), "
                "coalesce(extract(epoch FROM max(duration)), 0) "
                "FROM django_automigrate_migrationrun GROUP BY status ORDER BY status"
            ).fetchall()
    except Exception as exc:
        return [(f"unreadable: {type(exc).__name__}", 0, 0, 0.0)]
    return [
        (str(status), int(runs), int(applied), float(took)) for status, runs, applied, took in rows
    ]


@dataclasses.dataclass
class RaceReport:
    migrate_seconds: float | None = None
    migrate_problem: str = ""
    rounds: list[tuple[Crowd, Crowd]] = dataclasses.field(default_factory=list)


def run_races(
    root: Path,
    server: PostgresServer,
    size: int,
    apps: int,
    counts: Sequence[int],
    lock_timeout: float,
) -> RaceReport:
    project_root = root / f"p{size}"  # the project of that size, when --sizes made it
    if not project_root.exists():
        progress(f"race: writing a project of {size} migrations")
        write_project(project_root, size, apps)
    report = RaceReport()
    project = Project(size, "postgresql", project_root, server.settings("scale_race_migrate"))
    try:
        progress("race: baseline (a), one migrate on a fresh database")
        set_up(project, server)
        report.migrate_seconds = project.setup_seconds
        report.migrate_problem = project.error
    finally:
        server.drop(project.database["NAME"])
    for count in counts:
        project.database = server.settings(f"scale_race_{count}")
        progress(f"race: baseline (b), {count} django.setup() together")
        setups = crowd_of_setups(project, count, root / f"setups-{count}")
        progress(f"race: {count} automigrate together")
        try:
            crowd = race(project, server, count, root / f"race-{count}", lock_timeout)
        finally:
            server.drop(project.database["NAME"])
        report.rounds.append((setups, crowd))
    return report


# --- the report -----------------------------------------------------------------------------------


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def checkout() -> str:
    """The product's commit, and whether its files differ from it (they may, mid-change)."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "django_automigrate"],
            cwd=REPO,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "unknown"
    return f"{commit}{' + uncommitted changes' if dirty else ''}" if commit else "unknown"


def checkout_span(before: str) -> str:
    after = checkout()
    return before if after == before else f"{before} at the start, {after} at the end"


def header(server_version: str | None, checkout_before: str) -> str:
    import django

    import django_automigrate

    parts = [
        datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        f"Python {platform.python_version()}",
        f"Django {django.get_version()}",
        f"django-automigrate {django_automigrate.__version__} ({checkout_span(checkout_before)})",
        f"{cpu_model()}, {os.cpu_count()} cores",
    ]
    if server_version:
        parts.append(f"PostgreSQL {server_version}")
    return "**Scale benchmark** · " + " · ".join(parts)


def load_line(before: tuple[float, float, float]) -> str:
    """Other work on the machine skews every number: the load average says how much there was."""
    after = os.getloadavg()
    return (
        f"Load average (1, 5, 15 min) at the start: {', '.join(f'{x:.1f}' for x in before)}; "
        f"at the end: {', '.join(f'{x:.1f}' for x in after)}."
    )


def table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def ms(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds * 1000:.1f} ms"


def mib(size_bytes: float | None) -> str:
    return "n/a" if size_bytes is None else f"{size_bytes / 2**20:.1f} MiB"


def process_table(projects: Sequence[Project], timings: dict[str, dict[str, Samples]]) -> str:
    ready = [p for p in projects if p.key in timings]
    rows = []
    for variant in VARIANTS:
        row = [variant.label]
        for project in ready:
            samples = timings[project.key]
            median = samples[variant.label].median()
            bare = samples[VARIANTS[0].label].median()
            if median is None:
                row.append("failed")
            elif bare:
                row.append(f"{median:.3f} s ({median / bare:.2f}x)")
            else:
                row.append(f"{median:.3f} s")
        rows.append(row)
    rows.append(
        ["(setup: `migrate` from empty, once)", *(f"{p.setup_seconds:.1f} s" for p in ready)]
    )
    return table(["process, nothing to do", *(p.key for p in ready)], rows)


def probe_tables(projects: Sequence[Project], probes: dict[str, dict[str, Probe]]) -> str:
    ready = [p for p in projects if p.key in probes]
    timing_rows, memory_rows = [], []
    for key, label, _ in PROBES:
        times = [label]
        memory = [label]
        for project in ready:
            found = probes[project.key][key]
            if found.missing or found.problem:
                times.append("n/a" if found.missing else "failed")
                memory.append("n/a" if found.missing else "failed")
                continue
            times.append(f"{ms(found.first)} / {ms(found.later)}")
            rss = None if found.maxrss_kib is None else found.maxrss_kib * 1024
            memory.append(f"{mib(found.peak)} / {mib(rss)}")
        timing_rows.append(times)
        memory_rows.append(memory)
    keys = [p.key for p in ready]
    return "\n\n".join(
        [
            table(["in a fresh process: first call / later (median)", *keys], timing_rows),
            table(["first call adds: tracemalloc peak / ru_maxrss", *keys], memory_rows),
        ]
    )


def race_table(report: RaceReport) -> str:
    rows = []
    for setups, crowd in report.rounds:
        baseline = (report.migrate_seconds or 0.0) + setups.wall
        activity = crowd.activity or Activity()
        codes = ", ".join(f"{code}: {n}" for code, n in sorted(crowd.exit_codes.items()))
        history = ", ".join(
            f"{status} {runs} ({applied} applied, took {took:.0f} s)"
            for status, runs, applied, took in crowd.history
        )
        rows.append(
            [
                str(crowd.count),
                f"{crowd.wall:.1f} s",
                f"{1.2 * baseline:.1f} s",
                f"{setups.wall:.1f} s",
                codes,
                str(crowd.applied_by),
                history or "none",
                f"{activity.peak_server} / {activity.peak_total} / {activity.peak_waiters}",
                str(activity.most_per_waiter),
                str(crowd.too_many_clients),
            ]
        )
    head = [
        "N",
        "race wall",
        "target 1.2x(a+b)",
        "(b) N setups",
        "exit codes",
        "applied by",
        "history rows",
        "peak conns: server / this db / waiters",
        "most conns, 1 waiter",
        "too many clients",
    ]
    migrate = f"{report.migrate_seconds:.1f} s" if report.migrate_seconds is not None else "n/a"
    title = f"(a) one `migrate` of the plan on a fresh database: {migrate}"
    if report.migrate_problem:
        title += f" ({report.migrate_problem})"
    return title + "\n\n" + table(head, rows)


def notes(
    projects: Sequence[Project],
    timings: dict[str, dict[str, Samples]],
    probes: dict[str, dict[str, Probe]],
    races: RaceReport | None,
) -> list[str]:
    """What the tables cannot show: failures, the answers of the calls, what waiters ran."""
    found = []
    for project in projects:
        if project.error:
            found.append(f"{project.key}: not measured: {project.error}")
        for label, samples in timings.get(project.key, {}).items():
            if samples.failed:
                found.append(
                    f"{project.key}: {label}: {samples.failed} run(s) left out, the first: "
                    f"{samples.problem}"
                )
        for key, result in probes.get(project.key, {}).items():
            if result.missing:
                found.append(f"{project.key}: {key}: n/a ({result.missing})")
            elif result.problem:
                found.append(f"{project.key}: {key}: {result.problem}")
            elif result.outcome != EXPECTED_OUTCOMES.get(key, result.outcome):
                found.append(f"{project.key}: {key} answered {result.outcome!r}")
    for _, crowd in races.rounds if races else []:
        activity = crowd.activity or Activity()
        statuses = ", ".join(f"{status} {n}" for status, n in sorted(crowd.statuses.items()))
        found.append(f"race {crowd.count}: outcomes: {statuses}")
        for error, n in crowd.errors:
            found.append(f"race {crowd.count}: {n}x {error}")
        queries = "; ".join(f"{n}x {query}" for query, n in activity.waiter_queries)
        found.append(f"race {crowd.count}: waiters at their peak were running: {queries or '-'}")
        if activity.most_per_waiter > 1:
            found.append(
                f"race {crowd.count}: one waiting process held {activity.most_per_waiter} "
                f"connections: {' | '.join(activity.most_per_waiter_queries)}"
            )
        if activity.error:
            found.append(f"race {crowd.count}: the sampler failed: {activity.error}")
    return found


# --- main -----------------------------------------------------------------------------------------


def numbers(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=numbers, default=numbers("50,500,2000"))
    parser.add_argument("--apps", type=int, default=50)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds, after one warm-up")
    parser.add_argument("--calls", type=int, default=20, help="later calls of each in-process call")
    parser.add_argument("--race", type=numbers, default=numbers("64,256"))
    parser.add_argument("--race-migrations", type=int, default=500)
    parser.add_argument(
        "--race-lock-timeout", type=float, default=600.0, help="--lock-timeout of each racer"
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "AUTOMIGRATE_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres"
        ),
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    args.databases = [name.strip() for name in args.databases.split(",") if name.strip()]
    unknown = set(args.databases) - {"sqlite", "postgresql"}
    if unknown:
        parser.error(f"--databases: unknown {', '.join(sorted(unknown))}")
    return args


def projects_for(
    root: Path, args: argparse.Namespace, server: PostgresServer | None
) -> Iterator[Project]:
    for size in args.sizes:
        folder = root / f"p{size}"
        progress(f"writing a project of {size} migrations over {min(args.apps, size)} apps")
        write_project(folder, size, args.apps)
        for vendor in args.databases:
            if vendor == "postgresql":
                assert server is not None
                database = server.settings(f"scale_{size}")
            else:
                database = {
                    "ENGINE": "django.db.backends.sqlite3",
                    "NAME": str(folder / "db.sqlite3"),
                }
            yield Project(size, vendor, folder, database)


def measure(args: argparse.Namespace, root: Path, server: PostgresServer | None) -> str:
    load_before = os.getloadavg()
    checkout_before = checkout()
    projects: list[Project] = []
    timings: dict[str, dict[str, Samples]] = {}
    probes: dict[str, dict[str, Probe]] = {}
    for project in projects_for(root, args, server):
        projects.append(project)
        progress(f"{project.key}: migrating a fresh database")
        try:
            set_up(project, server)
            if project.error:
                continue
            progress(f"{project.key}: timing processes ({args.rounds} rounds + 1 warm-up)")
            timings[project.key] = time_processes(project, args.rounds)
            progress(f"{project.key}: timing calls in fresh processes")
            probes[project.key] = probe_all(project, args.calls)
        finally:
            if project.vendor == "postgresql" and server is not None:
                server.drop(project.database["NAME"])
    races = None
    if args.race and server is not None:
        races = run_races(
            root, server, args.race_migrations, args.apps, args.race, args.race_lock_timeout
        )
    sections = [
        header(server.version() if server else None, checkout_before),
        load_line(load_before),
    ]
    if timings:
        sections += [
            f"{args.rounds} rounds (median, after a warm-up round); {args.calls} later calls; "
            f"{args.apps} apps. Ratios are to the bare `django.setup()` of the same column.",
            process_table(projects, timings),
            probe_tables(projects, probes),
        ]
    if races is not None:
        sections.append(race_table(races))
    found = notes(projects, timings, probes, races)
    if found:
        sections.append("Notes:\n\n" + "\n".join(f"* {line}" for line in found))
    return "\n\n".join(sections)


def main() -> None:
    args = parse_arguments()
    uses_postgres = "postgresql" in args.databases or bool(args.race)
    server = PostgresServer(args.postgres_url) if uses_postgres else None
    root = Path(tempfile.mkdtemp(prefix="scale-"))
    progress(f"working in {root}")
    try:
        print(measure(args, root, server))
    finally:
        if args.keep:
            progress(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

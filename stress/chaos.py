"""The chaos suite: real processes against real PostgreSQL, MariaDB and SQLite, killed and cut.

Every trial gets a database of its own, drives ``manage.py automigrate`` processes of the test
project (with ``tests.faultapp``) into a fault, then ``tests.invariants.verify`` runs the next
``automigrate`` and checks the promise. See docs/design.md (Reliability).
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import dataclasses
import datetime
import json
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEFAULT_URLS = {
    "postgresql": "postgres://postgres@127.0.0.1:5432/postgres",
    "mysql": "mysql://root@127.0.0.1:3306/mysql",
}
BACKENDS = ("sqlite", "postgresql", "mysql")
LEASE = {"AUTOMIGRATE_LOCK_BACKEND": "table", "AUTOMIGRATE_LOCK_LEASE": "6"}


def _setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    sys.path.insert(0, str(REPO))
    import django

    django.setup()


@dataclasses.dataclass
class Trial:
    backend: str
    fault: str
    index: int
    seed: int
    violations: list[str] = dataclasses.field(default_factory=list)
    error: str = ""
    recovery: float | None = None
    detail: str = ""
    database: str = ""

    @property
    def failed(self) -> bool:
        return bool(self.violations)


# --- coordination between parallel trials ---------------------------------------------------------


class Gate:
    """Shared for ordinary trials, exclusive for trials that change a server for everyone
    (MariaDB's global wait_timeout) or load the machine (64 racing processes)."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._shared = 0
        self._exclusive = False

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        with self._condition:
            self._condition.wait_for(lambda: not self._exclusive)
            self._shared += 1
        try:
            yield
        finally:
            with self._condition:
                self._shared -= 1
                self._condition.notify_all()

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._condition:
            self._condition.wait_for(lambda: not self._exclusive)
            self._exclusive = True
            self._condition.wait_for(lambda: self._shared == 0)
        try:
            yield
        finally:
            with self._condition:
                self._exclusive = False
                self._condition.notify_all()


GATES = {backend: Gate() for backend in BACKENDS}
MACHINE = Gate()


# --- MariaDB's global wait_timeout: never left lowered ---------------------------------------
#
# trial_idle_timeout lowers it for the whole server (exclusive gate). The runner resets a leftover
# at start (a run killed before may have left one), before each MySQL trial, at exit (atexit)
# and on SIGTERM/SIGINT, through tests.faultapp.control's restore-safe helpers.

STOPPING = threading.Event()
_MYSQL_SERVERS: list[Any] = []
_LEFTOVERS: list[str] = []


def reset_wait_timeout(server: Any, when: str) -> None:
    from tests.faultapp import control

    leftover = control.reset_mysql_wait_timeout(server)
    if leftover is not None:
        note = (
            f"{when}: MariaDB's global wait_timeout was {leftover}, a leftover: "
            f"reset to {control.SANE_WAIT_TIMEOUT}"
        )
        _LEFTOVERS.append(note)
        print(f"WARNING {note}", file=sys.stderr, flush=True)


def _reset_all(when: str) -> None:
    for server in _MYSQL_SERVERS:
        try:
            reset_wait_timeout(server, when)
        except Exception as exc:  # the server may be down: say so, never hide it
            print(f"WARNING {when}: could not check wait_timeout: {exc}", file=sys.stderr)


def _on_signal(signum: int, frame: Any) -> None:
    _reset_all(f"signal {signum}")
    if STOPPING.is_set():  # the second signal: quit now (the value is reset just above)
        os._exit(128 + signum)
    STOPPING.set()
    raise KeyboardInterrupt(f"signal {signum}")


def install_wait_timeout_guard(mysql_url: str | None) -> None:
    """Reset a leftover now, and at exit and on SIGTERM/SIGINT (before calibration: a clean run
    must not meet a 2 s wait_timeout)."""
    from tests.servers import Server

    _MYSQL_SERVERS[:] = [Server("mysql", mysql_url)] if mysql_url else []
    _reset_all("start")
    atexit.register(_reset_all, "exit")
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _on_signal)


# --- the trials ----------------------------------------------------------------------------


class Context:
    """One backend: its server, scratch folder, and what calibration learnt."""

    def __init__(self, backend: str, url: str, scratch: Path) -> None:
        from tests.servers import Server

        self.backend = backend
        self.scratch = scratch
        self.server = (
            Server(backend, url) if backend != "sqlite" else Server("sqlite", folder=scratch)
        )
        self.run_seconds = 3.0
        self.points: list[str] = []

    def fresh(self) -> Any:
        return self.server.create_database()


def _markers(context: Context) -> Path:
    return Path(tempfile.mkdtemp(prefix="m-", dir=context.scratch))


def _kill(process: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGKILL)
    process.communicate()


def _finish(process: subprocess.Popen[str], timeout: float = 300) -> tuple[int, str]:
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill(process)
        return -9, "timed out"
    return process.returncode, out + err


def _wait_locked(markers: Path, process: subprocess.Popen[str], timeout: float = 120) -> bool:
    """Until the holder's first ``pre_migrate`` (it holds the lock); False when it ended first."""
    deadline = time.monotonic() + timeout
    while not any(markers.glob("locked-*")):
        if process.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def _kill_at(
    context: Context, db: Any, rng: random.Random, point: str, jitter: float, **extra: str
) -> str:
    """Start a holder stopping at ``point``; SIGKILL it there (after up to ``jitter`` s)."""
    from tests.faultapp import control

    markers = _markers(context)
    holder = control.start_holder(db, markers, point, extra=extra)
    try:
        control.wait_at(markers, point, holder)
    except control.HandshakeFailed:
        return f"{point}: not reached (the run ended first)"
    delay = rng.uniform(0, jitter)
    if delay:
        time.sleep(delay)  # the random moment itself, not a synchronisation
    _kill(holder)
    return f"{point} +{delay * 1000:.0f}ms"


def trial_kill_random(context: Context, db: Any, rng: random.Random) -> str:
    """Half the trials: SIGKILL a random delay after the lock is taken. Half: at a random
    handshake point of the whole plan (before a migration is recorded, before a statement)."""
    from tests.faultapp import control

    if rng.random() < 0.5 and context.points:
        return _kill_at(context, db, rng, rng.choice(context.points), 0.05)
    markers = _markers(context)
    holder = control.start_holder(db, markers)
    if not _wait_locked(markers, holder):
        _finish(holder)
        return "ended before the lock"
    delay = rng.uniform(0, context.run_seconds)
    time.sleep(delay)  # the random moment
    _kill(holder)
    return f"+{delay:.2f}s after the lock"


def trial_kill_runpython(context: Context, db: Any, rng: random.Random) -> str:
    return _kill_at(context, db, rng, "0002", 0.5)


def trial_kill_nonatomic(context: Context, db: Any, rng: random.Random) -> str:
    return _kill_at(context, db, rng, "0004", 0.3)


def trial_kill_before_lock(context: Context, db: Any, rng: random.Random) -> str:
    """A process killed while it waits for the lock (another holds it), or before it asks."""
    from tests.faultapp import control

    markers = _markers(context)
    holder = control.start_holder(db, markers, "0002")
    control.wait_at(markers, "0002", holder)
    victim_markers = _markers(context)
    victim = control.start_holder(db, victim_markers)
    delay = rng.uniform(0.1, 2.5)
    time.sleep(delay)  # the random moment
    locked = any(victim_markers.glob("locked-*"))
    _kill(victim)
    control.go(markers, "0002")
    code, output = _finish(holder)
    if code != 0 or locked:
        raise AssertionError(f"holder exited {code} (victim locked: {locked}): {output[-800:]}")
    return f"victim killed +{delay:.2f}s"


def trial_kill_own_migrations(context: Context, db: Any, rng: random.Random) -> str:
    """A fresh database: SIGKILL while django_automigrate's own migrations apply."""
    from tests.invariants import schema_objects

    own = [label for label in schema_objects() if label.startswith("django_automigrate.")]
    label = rng.choice(own)
    point = rng.choice([f"record:{label}", *(f"stmt:{label}:{n}" for n in (1, 2, 3))])
    return _kill_at(context, db, rng, point, 0.02)


def _cut(context: Context, db: Any, rng: random.Random, which: str) -> str:
    from tests.faultapp import control
    from tests.invariants import verify

    point = rng.choice(["0002", "0004", "record:faultapp.0003_count"])
    markers = _markers(context)
    holder = control.start_holder(db, markers, point)
    control.wait_at(markers, point, holder)
    locks = control.lock_sessions(db)
    every = control.sessions(db)
    if which == "lock":
        cut = locks
    elif which == "migration":
        # The session that runs the migration (the lock's too, if one session holds both);
        # the process's other sessions (the lock-wait watcher's) are not it.
        session = control.migration_session(markers, point)
        cut = [session] if session is not None else [s for s in every if s not in locks] or locks
    else:
        cut = every
    control.terminate(db, cut)
    control.wait_until_gone(db, cut)
    during = verify(db)  # the next replica, while the cut holder still waits
    recorded = sorted(db.migration_rows())
    control.go(markers, point)
    code, output = _finish(holder)
    problems = [f"while the cut holder waited: {v}" for v in during.violations]
    if code == 0 and which != "migration":
        problems.append(f"the cut holder exited 0: {output[-500:]}")
    if code == 0 and cut == locks:
        problems.append(f"the holder whose lock session was cut exited 0: {output[-500:]}")
    if sorted(db.migration_rows()) != recorded:
        problems.append("the cut holder changed django_migrations after losing its session")
    if problems:
        raise _Violations(problems)
    return f"{point}: cut {len(cut)} of {len(every)} session(s), holder exit {code}"


#: What PostgreSQL and MariaDB say when max_connections is reached.
CAPACITY_ERRORS = ("too many clients", "too many connections")


class _Capacity(Exception):
    """The trial kept every invariant, but the server could not take all its connections."""


class _Violations(Exception):
    def __init__(self, violations: list[str]) -> None:
        super().__init__("; ".join(violations))
        self.violations = violations


def trial_cut_lock(context: Context, db: Any, rng: random.Random) -> str:
    return _cut(context, db, rng, "lock")


def trial_cut_migration(context: Context, db: Any, rng: random.Random) -> str:
    return _cut(context, db, rng, "migration")


def trial_cut_both(context: Context, db: Any, rng: random.Random) -> str:
    return _cut(context, db, rng, "both")


def trial_idle_timeout(context: Context, db: Any, rng: random.Random) -> str:
    from tests.faultapp import control
    from tests.invariants import automigrate

    point = rng.choice(["0002", "0004"])
    markers = _markers(context)
    if STOPPING.is_set():
        raise RuntimeError("stopping: wait_timeout not lowered")
    with control.idle_timeout(db, 2):
        holder = control.start_holder(db, markers, point)
        control.wait_at(markers, point, holder)
        waiting = automigrate(db, "--format", "json", "--lock-timeout", "5")
        control.go(markers, point)
        code, output = _finish(holder)
    problems = []
    if waiting.returncode != 3:
        problems.append(f"a replica got the lock from a working holder (exit {waiting.returncode})")
    if code != 0:
        problems.append(f"the working holder exited {code}: {output[-500:]}")
    if problems:
        raise _Violations(problems)
    return point


def _race(context: Context, db: Any, count: int, **extra: str) -> str:
    from tests.invariants import env, report_of
    from tests.utils import Result, start_command

    processes = [
        start_command(db.url, "automigrate", "--format", "json", **env(**extra))
        for _ in range(count)
    ]
    results = []
    for process in processes:
        out, err = process.communicate(timeout=900)
        results.append(Result(process.returncode, out, err))
    if db.vendor != "sqlite":
        # The server ends the sessions of exited replicas a moment later: let them go before
        # the next run, which must not meet a full server (max_connections) left by them.
        from tests.faultapp import control

        deadline = time.monotonic() + 15
        while control.sessions(db) and time.monotonic() < deadline:
            time.sleep(0.1)
    reports = [report_of(r) for r in results]
    appliers = [r for r in reports if r.get("applied")]
    problems = []
    # A replica the server refused a connection (its max_connections reached) applied nothing
    # and says so: the server's capacity, not a broken promise. Counted as an error instead.
    refused = [
        r
        for r, report in zip(results, reports, strict=True)
        if r.returncode == 1
        and not report.get("applied")
        and any(text in (report.get("error") or "").lower() for text in CAPACITY_ERRORS)
    ]
    failed = [
        (r.returncode, report_of(r).get("error", "")[:200])
        for r in results
        if r.returncode and r not in refused
    ]
    if failed:
        problems.append(f"{len(failed)} of {count} replicas failed: {failed[:3]}")
    if len(appliers) != 1:
        problems.append(f"{len(appliers)} replicas applied migrations (want 1)")
    if problems:
        raise _Violations(problems)
    if refused:
        raise _Capacity(
            f"{len(refused)} of {count} replicas were refused a connection by the server "
            f"({(report_of(refused[0]).get('error') or '')[-120:]}); one replica applied "
            f"{len(appliers[0]['applied'])}, the others exited 0"
        )
    return f"{count} replicas, {len(appliers[0]['applied'])} applied by one"


def trial_race_16(context: Context, db: Any, rng: random.Random) -> str:
    return _race(context, db, 16)


def trial_race_64(context: Context, db: Any, rng: random.Random) -> str:
    return _race(context, db, 64)


def trial_race_16_table(context: Context, db: Any, rng: random.Random) -> str:
    return _race(context, db, 16, **LEASE)


def trial_race_64_table(context: Context, db: Any, rng: random.Random) -> str:
    return _race(context, db, 64, **LEASE)


def trial_sqlite_two_paths(context: Context, db: Any, rng: random.Random) -> str:
    """The same SQLite file reached through a symlinked folder: 8 replicas, half each way,
    one of them SIGKILLed at a random moment after it took the lock."""
    from tests.faultapp.handshake import DIR_VARIABLE
    from tests.invariants import env, report_of
    from tests.utils import Result, start_command

    link = context.scratch / f"link-{db.name}"
    link.symlink_to(db.path.parent, target_is_directory=True)
    urls = [db.url, f"sqlite:///{link / db.path.name}"]
    markers = _markers(context)
    processes = [
        start_command(
            urls[i % 2], "automigrate", "--format", "json", **env(**{DIR_VARIABLE: str(markers)})
        )
        for i in range(8)
    ]
    victim: int | None = None
    if rng.random() < 0.5:
        deadline = time.monotonic() + 60
        while not any(markers.glob("locked-*")) and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(rng.uniform(0, context.run_seconds))  # the random moment
        locked = [int(p.name.split("-", 1)[1]) for p in markers.glob("locked-*")]
        for process in processes:
            if process.pid in locked and process.poll() is None:
                process.send_signal(signal.SIGKILL)
                victim = process.pid
                break
    results = []
    for process in processes:
        out, err = process.communicate(timeout=600)
        results.append((process.pid, Result(process.returncode, out, err)))
    link.unlink()
    applied_by = {pid for pid, r in results if pid != victim and report_of(r).get("applied")}
    failed = [r.returncode for pid, r in results if pid != victim and r.returncode]
    problems = []
    if failed:
        problems.append(f"replicas failed: {failed}")
    locks = [pid for pid, r in results if pid != victim and report_of(r).get("applied")]
    if victim is None and len(applied_by) != 1:
        problems.append(f"{len(locks)} replicas applied migrations (want 1)")
    if problems:
        raise _Violations(problems)
    return f"8 replicas over two paths, victim {'none' if victim is None else 'killed'}"


@dataclasses.dataclass(frozen=True)
class Fault:
    name: str
    run: Callable[[Context, Any, random.Random], str]
    trials: int
    backends: tuple[str, ...] = BACKENDS
    #: Exclusive on its backend's server (changes it for everyone), or on the whole machine.
    exclusive: str = ""
    lease: bool = False


FAULTS = [
    Fault("kill-random", trial_kill_random, 100),
    Fault("kill-runpython", trial_kill_runpython, 15),
    Fault("kill-nonatomic", trial_kill_nonatomic, 15),
    Fault("kill-before-lock", trial_kill_before_lock, 10),
    Fault("kill-own-migrations", trial_kill_own_migrations, 20),
    Fault("cut-lock-session", trial_cut_lock, 10, ("postgresql", "mysql")),
    Fault("cut-migration-session", trial_cut_migration, 10, ("postgresql", "mysql")),
    Fault("cut-both-sessions", trial_cut_both, 10, ("postgresql", "mysql")),
    Fault("idle-timeout", trial_idle_timeout, 5, ("postgresql", "mysql"), exclusive="server"),
    Fault("race-16", trial_race_16, 3),
    Fault("race-64", trial_race_64, 2, exclusive="machine"),
    Fault("race-16-table", trial_race_16_table, 3, ("postgresql", "mysql"), lease=True),
    Fault(
        "race-64-table",
        trial_race_64_table,
        2,
        ("postgresql", "mysql"),
        exclusive="machine",
        lease=True,
    ),
    Fault("two-paths", trial_sqlite_two_paths, 10, ("sqlite",)),
]


def run_trial(context: Context, fault: Fault, index: int, seed: int, keep: bool) -> Trial:
    from tests.invariants import verify

    trial = Trial(context.backend, fault.name, index, seed)
    rng = random.Random(seed)
    gate: Any
    if fault.exclusive == "machine":
        gate = MACHINE.exclusive()
    elif fault.exclusive == "server" and context.backend == "mysql":
        gate = GATES["mysql"].exclusive()  # wait_timeout is global
    else:
        gate = GATES[context.backend].shared()
    machine = MACHINE.shared() if fault.exclusive != "machine" else contextlib.nullcontext()
    with machine, gate:
        if STOPPING.is_set():
            trial.error = "not run: the runner was stopped"
            return trial
        if context.backend == "mysql":
            # Only trial_idle_timeout lowers it, under the exclusive gate this one waited for.
            reset_wait_timeout(context.server, f"before {fault.name} #{index}")
        db = context.fresh()
        trial.database = db.name if context.backend != "sqlite" else str(db.path)
        try:
            try:
                trial.detail = fault.run(context, db, rng)
            except _Violations as exc:
                trial.violations += exc.violations
            except _Capacity as exc:
                trial.error = f"server capacity: {exc}"
                trial.detail = str(exc)
            extra = LEASE if fault.lease else {}
            verdict = verify(db, extra)
            trial.violations += verdict.violations
            trial.recovery = verdict.recovery
            if verdict.violations:
                trial.detail += "\n" + str(verdict)
        except Exception:
            trial.error = traceback.format_exc(limit=6)
        finally:
            if not keep or not (trial.failed or trial.error):
                with contextlib.suppress(Exception):
                    db.drop()
    return trial


def calibrate(context: Context) -> None:
    """One clean run on a fresh database: how long a run lasts after the lock, and its plan."""
    from tests.faultapp import control
    from tests.invariants import history

    db = context.fresh()
    try:
        markers = _markers(context)
        holder = control.start_holder(db, markers)
        if _wait_locked(markers, holder):
            started = time.monotonic()
            code, output = _finish(holder)
            context.run_seconds = max(0.5, time.monotonic() - started)
        else:
            code, output = _finish(holder)
        if code != 0:
            raise RuntimeError(f"a clean run on {context.backend} exited {code}: {output[-1500:]}")
        planned = [label for row in history(db) for label in row["planned"]]
        points = [f"record:{label}" for label in planned]
        points += [
            f"stmt:{label}:1"
            for label in planned
            if label.startswith(("faultapp.", "django_automigrate."))
        ]
        context.points = [*points, "0002", "0004", "post_migrate"]
    finally:
        db.drop()


# --- the report -----------------------------------------------------------------------------------


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def table(trials: list[Trial]) -> str:
    lines = [
        "| backend | fault | trials | invariant violations | errors "
        "| next run succeeds: median | p95 |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    keys = sorted(
        {(t.backend, t.fault) for t in trials},
        key=lambda k: (BACKENDS.index(k[0]), [f.name for f in FAULTS].index(k[1])),
    )
    for backend, fault in keys:
        group = [t for t in trials if (t.backend, t.fault) == (backend, fault)]
        times = [t.recovery for t in group if t.recovery is not None]
        median = f"{statistics.median(times):.1f} s" if times else "-"
        p95 = f"{_percentile(times, 0.95):.1f} s" if times else "-"
        violations = sum(1 for t in group if t.failed)
        errors = sum(1 for t in group if t.error)
        lines.append(
            f"| {backend} | {fault} | {len(group)} | {violations} | {errors} | {median} | {p95} |"
        )
    return "\n".join(lines)


def _command(*args: str) -> str:
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=30).stdout.strip()
    except OSError:
        return "?"


def environment(contexts: list[Context]) -> list[str]:
    import django

    lines = [
        f"* date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"* machine: {_command('nproc')} CPUs, {_command('uname', '-sr')}",
        f"* Python {platform.python_version()}, Django {django.get_version()}",
    ]
    for context in contexts:
        if context.backend == "sqlite":
            import sqlite3

            lines.append(f"* SQLite {sqlite3.sqlite_version}")
            continue
        with context.server.admin_connection() as connection:
            cursor = connection.cursor()
            cursor.execute("SELECT version()")
            lines.append(f"* {context.backend}: {cursor.fetchone()[0]}")
            cursor.close()
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stress", description=__doc__)
    parser.add_argument("--backend", default=",".join(BACKENDS), help="comma-separated")
    parser.add_argument("--fault", default="", help="comma-separated (default: all); see --list")
    parser.add_argument("--trials", type=int, default=None, help="trials per backend and fault")
    parser.add_argument("--jobs", type=int, default=3, help="trials run at once")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--trial-seed", type=int, default=None, help="run one trial with this seed (reproduce)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the databases of failed trials")
    parser.add_argument("--output", default=str(REPO / "stress" / "last-run.md"))
    parser.add_argument("--list", action="store_true", help="list the faults and exit")
    options = parser.parse_args(argv)
    if options.list:
        for fault in FAULTS:
            print(f"{fault.name:24} {fault.trials:4} trials on {', '.join(fault.backends)}")
        return 0
    _setup_django()
    backends = [b for b in options.backend.split(",") if b]
    wanted = {f for f in options.fault.split(",") if f}
    unknown = wanted - {f.name for f in FAULTS}
    if unknown or set(backends) - set(BACKENDS):
        parser.error(f"unknown fault or backend: {sorted(unknown) or backends}")
    seed = options.seed if options.seed is not None else random.randrange(1 << 30)
    scratch = Path(tempfile.mkdtemp(prefix="automigrate-stress-"))
    contexts: list[Context] = []
    urls = {
        backend: os.environ.get(
            f"AUTOMIGRATE_TEST_{'POSTGRES' if backend == 'postgresql' else 'MYSQL'}_URL"
        )
        or DEFAULT_URLS.get(backend, "")
        for backend in backends
    }
    install_wait_timeout_guard(urls.get("mysql"))
    for backend in backends:
        url = urls[backend]
        context = Context(backend, url, scratch / backend)
        context.scratch.mkdir()
        try:
            calibrate(context)
        except Exception as exc:
            print(f"{backend}: skipped: {exc}", file=sys.stderr)
            continue
        print(
            f"{backend}: a run lasts {context.run_seconds:.1f}s after the lock; "
            f"{len(context.points)} handshake points",
            file=sys.stderr,
        )
        contexts.append(context)
    jobs = []
    rng = random.Random(seed)
    for context in contexts:
        for fault in FAULTS:
            if (wanted and fault.name not in wanted) or context.backend not in fault.backends:
                continue
            if options.trial_seed is not None:
                jobs.append((context, fault, 0, options.trial_seed))
                continue
            for index in range(options.trials or fault.trials):
                jobs.append((context, fault, index, rng.randrange(1 << 30)))
    random.Random(seed).shuffle(jobs)  # spread the backends and faults over the run
    print(f"seed {seed}: {len(jobs)} trials, {options.jobs} at once", file=sys.stderr)
    trials: list[Trial] = []
    started = time.monotonic()
    pool = ThreadPoolExecutor(max_workers=options.jobs)
    futures = [pool.submit(run_trial, c, f, i, s, options.keep) for c, f, i, s in jobs]
    try:
        for done, future in enumerate(as_completed(futures), 1):
            trial = future.result()
            trials.append(trial)
            mark = "VIOLATION" if trial.failed else ("ERROR" if trial.error else "ok")
            print(
                f"[{done}/{len(jobs)} {time.monotonic() - started:5.0f}s] {trial.backend} "
                f"{trial.fault} #{trial.index} seed {trial.seed}: {mark} "
                + (trial.detail.splitlines()[0] if trial.detail else ""),
                file=sys.stderr,
                flush=True,
            )
            if trial.failed or trial.error:
                print(
                    f"    database {trial.database}\n    "
                    + "\n    ".join(trial.violations + trial.error.splitlines()),
                    file=sys.stderr,
                )
    except KeyboardInterrupt:
        STOPPING.set()
        pool.shutdown(wait=False, cancel_futures=True)
        print(
            "stopping: waiting for the running trials (they restore what they changed); "
            "signal again to quit now",
            file=sys.stderr,
            flush=True,
        )
        pool.shutdown(wait=True)
        _reset_all("stopped")
        shutil.rmtree(scratch, ignore_errors=True)
        return 130
    pool.shutdown(wait=True)
    shutil.rmtree(scratch, ignore_errors=True)
    report = table(trials)
    print(report)
    failed = [t for t in trials if t.failed]
    errored = [t for t in trials if t.error]
    lines = [
        "# Stress run",
        "",
        *environment(contexts),
        f"* seed {seed}, {len(trials)} trials in {time.monotonic() - started:.0f} s",
        *(f"* {note}" for note in _LEFTOVERS),
        "",
        report,
        "",
    ]
    if failed or errored:
        lines.append("## Violations and errors")
        lines.append("")
        for trial in failed + errored:
            lines.append(
                f"* {trial.backend} {trial.fault} #{trial.index} (`python -m stress --backend "
                f"{trial.backend} --fault {trial.fault} --trial-seed {trial.seed} --keep`): "
                + "; ".join(trial.violations or [trial.error.strip().splitlines()[-1]])
            )
        lines.append("")
    Path(options.output).write_text("\n".join(lines))
    print(
        json.dumps({"violations": len(failed), "errors": len(errored), "report": options.output}),
        file=sys.stderr,
    )
    if failed:
        return 1
    return 2 if errored else 0

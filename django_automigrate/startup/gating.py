"""Whether this process runs migrations at startup: settings plus what kind of process it is.

Decided inside ``AppConfig.ready()``, before Django has even looked up a management command, so
the process is recognised from ``sys.argv``, the environment and the modules already imported.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Mapping, Sequence

from django_automigrate.conf import AutomigrateSettings

#: Servers whose processes serve requests, by a module they import before loading the app.
SERVER_MODULES = ("gunicorn.arbiter", "uvicorn", "daphne.server", "uwsgi", "hypercorn", "granian")
#: The same servers, by the name of the program that was started.
SERVER_PROGRAMS = frozenset({"gunicorn", "uvicorn", "daphne", "uwsgi", "hypercorn", "granian"})
#: Commands that serve requests through Django's development server (with its autoreloader).
RUNSERVER_COMMANDS = frozenset({"runserver", "runserver_plus"})
#: Commands that never migrate at startup, whatever ON_STARTUP says: they migrate, inspect
#: migrations or run tests themselves.
MIGRATION_COMMANDS = frozenset(
    {
        "automigrate",
        "makemigrations",
        "migrate",
        "optimizemigration",
        "showmigrations",
        "sqlmigrate",
        "squashmigrations",
        "test",
        "testserver",
    }
)
MANAGE_PROGRAMS = frozenset({"manage.py", "django-admin", "django-admin.py"})


@dataclasses.dataclass(frozen=True)
class Decision:
    run: bool
    reason: str

    def message(self) -> str:
        verb = "runs at startup" if self.run else "skipped at startup"
        return f"automigrate: {verb}: {self.reason}"


@dataclasses.dataclass(frozen=True)
class Process:
    """What the process looks like from inside ``ready()``."""

    argv: Sequence[str]
    environ: Mapping[str, str]
    modules: frozenset[str]
    #: The arguments of the running ``ManagementUtility`` (``execute_from_command_line``),
    #: whatever the script is called, or None when no management command is running.
    management_argv: Sequence[str] | None = None

    @classmethod
    def current(cls) -> Process:
        return cls(list(sys.argv), dict(os.environ), frozenset(sys.modules), _management_argv())

    @property
    def program(self) -> str:
        return os.path.basename(self.argv[0]) if self.argv else ""

    @property
    def command(self) -> str | None:
        """The management command, when this is ``manage.py``/``django-admin``/``-m django``
        or any script that runs ``execute_from_command_line``."""
        if self.management_argv is not None:
            argv = self.management_argv
            return argv[1] if len(argv) > 1 else "help"
        program = self.argv[0] if self.argv else ""
        is_manage = (
            self.program in MANAGE_PROGRAMS
            or program.endswith("manage.py")
            or program.replace("\\", "/").endswith("django/__main__.py")
        )
        if not is_manage:
            return None
        return self.argv[1] if len(self.argv) > 1 else "help"

    @property
    def under_pytest(self) -> bool:
        # pytest >= 8.2 sets PYTEST_VERSION for the whole run; pytest-django sets Django up
        # before it blocks database access, so the hook would otherwise reach the real database.
        return "PYTEST_VERSION" in self.environ or "pytest" in self.modules

    @property
    def is_runserver_child(self) -> bool:
        """The process of runserver that serves (the autoreloader's parent never does)."""
        return (
            self.environ.get("RUN_MAIN") == "true"
            or self.environ.get("WERKZEUG_RUN_MAIN") == "true"
            or "--noreload" in self.argv
        )

    @property
    def server(self) -> str | None:
        """The name of the web server this process belongs to, if any."""
        for module in SERVER_MODULES:
            if module in self.modules:
                return module.split(".")[0]
        if self.environ.get("SERVER_SOFTWARE", "").startswith("gunicorn"):
            return "gunicorn"
        if self.program in SERVER_PROGRAMS:
            return self.program
        return None


def decide(conf: AutomigrateSettings, process: Process, *, explicit: bool = False) -> Decision:
    """Run at startup, or not, and why; first matching rule wins. ``explicit``: the project
    called :func:`~django_automigrate.startup.run_at_startup`, which is its decision: only
    ``ENABLED`` and a test run can stop it."""
    if not conf.enabled:
        return Decision(False, "ENABLED is off")
    if conf.on_startup is False and not explicit:
        return Decision(False, "ON_STARTUP is off")
    if process.under_pytest:
        return Decision(False, "running under pytest")
    if explicit:
        return Decision(True, f"run_at_startup(), environment {conf.environment}, mode {conf.mode}")
    command = process.command
    if command in MIGRATION_COMMANDS:
        return Decision(False, f"management command {command!r} (migrations and tests run alone)")
    if command in RUNSERVER_COMMANDS and not process.is_runserver_child:
        return Decision(False, f"{command}'s autoreloader parent (its serving child migrates)")
    if conf.on_startup == "auto" and command not in RUNSERVER_COMMANDS:
        if command is not None:
            return Decision(False, f"management command {command!r} does not serve requests")
        server = process.server
        if server is None:
            return Decision(False, "not a web server process (ON_STARTUP is 'auto')")
    if conf.environment == "production" and not conf.in_production:
        return Decision(False, "environment is production and IN_PRODUCTION is off")
    where = command or process.server or process.program or "this process"
    return Decision(True, f"{where}, environment {conf.environment}, mode {conf.mode}")


def joins_fleet(conf: AutomigrateSettings, process: Process) -> bool:
    """Whether this process registers in the fleet by itself: a serving process (what
    ``ON_STARTUP = "auto"`` calls one), whatever its startup run does. Workers and jobs join
    by calling :func:`django_automigrate.join_fleet`."""
    if not conf.fleet or process.under_pytest:
        return False
    command = process.command
    if command in RUNSERVER_COMMANDS:
        return process.is_runserver_child
    return command is None and process.server is not None


def _management_argv() -> list[str] | None:
    """The argv of a ``ManagementUtility.execute()`` running further up this thread's stack.

    ``ready()`` runs inside ``django.setup()``, which ``ManagementUtility.execute()`` calls
    before it looks the command up: the frame is there whatever the script is named
    (``manage.py``, ``./manage``, a console script).
    """
    frame = sys._getframe(1)
    while frame is not None:
        if (
            frame.f_code.co_name == "execute"
            and frame.f_globals.get("__name__") == "django.core.management"
        ):
            argv = getattr(frame.f_locals.get("self"), "argv", None)
            if isinstance(argv, list):
                return [str(arg) for arg in argv]
        frame = frame.f_back  # type: ignore[assignment]
    return None

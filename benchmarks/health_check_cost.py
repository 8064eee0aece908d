"""What one call of the health check costs, on a project with many migrations.

    python benchmarks/health_check_cost.py [--migrations 500] [--repeat 200] [--database-url URL]

Builds a throwaway app with N migrations (as noop_run.py does), applies them, then times:

* the check's first call in a process (it builds Django's migration loader and caches the plan);
* a cached call (what every probe after the first costs: one aggregate query);
* a call right after ``django_migrations`` changed (the plan is computed again);
* the whole django-health-check view answering a request, with the check in it;
* for comparison, what a check without a cache costs: Django's loader and plan on every call
  (django-health-check 3.x's migrations check did that).

SQLite by default; ``--database-url`` (for example postgres://postgres@127.0.0.1:5432/postgres)
uses a fresh database created on that server and dropped afterwards. Run by hand; the numbers
belong in notes and docs, never in assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from noop_run import write_app


def timed(function: Callable[[], object], repeat: int) -> list[float]:
    seconds = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        seconds.append(time.perf_counter() - started)
    return seconds


def database_settings(url: str | None, root: Path) -> tuple[dict[str, Any], Callable[[], None]]:
    """The DATABASES entry, and how to drop what was created for it."""
    if not url:
        (root / "bench.sqlite3").touch()
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": str(root / "bench.sqlite3")}, (
            lambda: None
        )
    import environ
    import psycopg

    config: dict[str, Any] = environ.Env.db_url_config(url)
    if "postgresql" not in config["ENGINE"]:
        raise SystemExit("--database-url: only PostgreSQL URLs are supported by this benchmark")
    name = f"automigrate_bench_{uuid.uuid4().hex[:8]}"
    admin = psycopg.connect(
        dbname=config["NAME"], user=config["USER"], host=config["HOST"], port=config["PORT"],
        password=config["PASSWORD"], autocommit=True,
    )  # fmt: skip
    admin.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        from django.db import connections

        connections.close_all()
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()

    return {**config, "NAME": name}, drop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--migrations", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        write_app(root, args.migrations)
        sys.path.insert(0, str(root))
        database, drop = database_settings(args.database_url, root)
        try:
            report(args, database)
        finally:
            drop()


def report(args: argparse.Namespace, database: dict[str, Any]) -> None:
    import django
    from django.conf import settings

    settings.configure(
        INSTALLED_APPS=[
            "django.contrib.contenttypes",
            "django.contrib.auth",
            "health_check",
            "django_automigrate",
            "benchapp",
        ],
        DATABASES={"default": database},
        USE_TZ=True,
        ALLOWED_HOSTS=["*"],
        TEMPLATES=[
            {"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}
        ],
        LOGGING_CONFIG=None,
    )
    django.setup()
    from django.db import connections
    from django.db.migrations.executor import MigrationExecutor
    from django.db.migrations.recorder import MigrationRecorder
    from django.test import RequestFactory
    from health_check.views import HealthCheckView

    import django_automigrate
    from django_automigrate import status
    from django_automigrate.health import Migrations

    assert django_automigrate.migrate(verbosity=0).ok
    check = Migrations()
    connection = connections["default"]

    started = time.perf_counter()
    check.run()
    first = time.perf_counter() - started

    cached = timed(check.run, args.repeat)

    recorder = MigrationRecorder(connection)
    changed = []
    for index in range(min(args.repeat, 20)):
        # Another process records a migration (this code does not know it: still up to date).
        recorder.record_applied("elsewhere", f"{index:04d}_other")
        changed += timed(check.run, 1)

    def naive() -> None:
        executor = MigrationExecutor(connection)
        executor.migration_plan(executor.loader.graph.leaf_nodes())

    uncached = timed(naive, max(args.repeat // 10, 5))

    view = HealthCheckView.as_view(checks=["django_automigrate.health.Migrations"])
    factory = RequestFactory()

    def request() -> None:
        response = view(factory.get("/health/ready/", {"format": "json"}))
        if asyncio.iscoroutine(response):
            response = asyncio.run(response)
        assert response.status_code == 200, response.content

    through_view = timed(request, max(args.repeat // 4, 5))
    status.clear_cache()

    def ms(values: list[float]) -> str:
        return f"{statistics.median(values) * 1000:8.2f} ms median (n={len(values)})"

    vendor = connection.vendor
    print(f"{args.migrations} migrations on disk (benchapp), {vendor}")
    print(f"first call (builds the loader):  {first * 1000:8.2f} ms")
    print(f"cached call:                     {ms(cached)}")
    print(f"call after django_migrations changed: {ms(changed)}")
    print(f"whole health-check view (JSON):  {ms(through_view)}")
    print(f"without a cache (loader + plan): {ms(uncached)}")
    print(f"cached call is {statistics.median(uncached) / statistics.median(cached):.0f}x cheaper")


if __name__ == "__main__":
    main()

"""How long a run takes when nothing is pending (every replica's start), a dry run, a full run.

    python benchmarks/noop_run.py [--migrations 500] [--repeat 5]

Builds a throwaway app with N migrations (one small model each) in a temporary folder, applies
them to a SQLite file with ``django_automigrate.migrate()``, then times no-op runs. Run by hand;
the numbers belong in notes and docs, never in assertions.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

MIGRATION = """from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = {dependencies}

    operations = [
        migrations.CreateModel(
            name="Thing{index}",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("name", models.CharField(max_length=50)),
            ],
        ),
    ]
"""


def write_app(root: Path, count: int) -> None:
    app = root / "benchapp"
    (app / "migrations").mkdir(parents=True)
    (app / "__init__.py").write_text("")
    (app / "migrations" / "__init__.py").write_text("")
    for index in range(1, count + 1):
        dependencies = f"[('benchapp', '{index - 1:04d}_thing')]" if index > 1 else "[]"
        source = MIGRATION.format(dependencies=dependencies, index=index)
        (app / "migrations" / f"{index:04d}_thing.py").write_text(source)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--migrations", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        write_app(root, args.migrations)
        (root / "bench.sqlite3").touch()  # an empty database, as a new server database is
        sys.path.insert(0, str(root))
        import django
        from django.conf import settings

        settings.configure(
            INSTALLED_APPS=[
                "django.contrib.contenttypes",
                "django.contrib.auth",
                "django_automigrate",
                "benchapp",
            ],
            DATABASES={
                "default": {
                    "ENGINE": "django.db.backends.sqlite3",
                    "NAME": str(root / "bench.sqlite3"),
                }
            },
            USE_TZ=True,
        )
        django.setup()
        from django.db import connections
        from django.db.migrations.executor import MigrationExecutor

        import django_automigrate
        from django_automigrate import dryrun
        from django_automigrate.conf import get_settings

        started = time.perf_counter()
        (preview,) = dryrun.preview(["default"], get_settings())
        dry_run_seconds = time.perf_counter() - started
        assert not preview.error, preview.error

        started = time.perf_counter()
        full = django_automigrate.migrate(verbosity=0)
        full_seconds = time.perf_counter() - started
        assert full.ok, full.to_dict()

        noop = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            result = django_automigrate.migrate(verbosity=0)
            noop.append(time.perf_counter() - started)
            assert result.databases[0].status == "nothing_to_do"

        loader = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            MigrationExecutor(connections["default"])
            loader.append(time.perf_counter() - started)

    applied = len(full.applied)
    print(f"migrations on disk (benchapp): {args.migrations}; applied in the full run: {applied}")
    print(f"dry run (with SQL):  {dry_run_seconds:8.3f} s  ({len(preview.migrations)} migrations)")
    print(f"full run:            {full_seconds:8.3f} s")
    print(f"no-op run (median):  {statistics.median(noop):8.3f} s  (runs: {args.repeat})")
    print(f"migration loader:    {statistics.median(loader):8.3f} s  (Django's, for reference)")


if __name__ == "__main__":
    main()

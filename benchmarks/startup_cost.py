"""What having django-automigrate in INSTALLED_APPS costs a process that starts, when it does
not migrate (the decision and the settings read; no database is touched).

    python benchmarks/startup_cost.py [--repeat 15]

Each sample is a fresh interpreter timing ``django.setup()``, with and without the app. Run by
hand; the numbers belong in notes and docs, never in assertions.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

PROGRAM = """
import time
started = time.perf_counter()
import django
from django.conf import settings
apps = ["django.contrib.contenttypes", "django.contrib.auth"] + {extra!r}
settings.configure(
    INSTALLED_APPS=apps,
    DATABASES={{"default": {{"ENGINE": "django.db.backends.postgresql", "NAME": "none",
                             "HOST": "127.0.0.1", "PORT": "9"}}}},
    AUTOMIGRATE={{"ENABLED": {enabled}}},
)
django.setup()
print(time.perf_counter() - started)
"""


def sample(extra: list[str], enabled: bool) -> float:
    code = PROGRAM.format(extra=extra, enabled=enabled)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    variants = {
        "without the app": ([], True),
        "with the app, ENABLED off": (["django_automigrate"], False),
        "with the app, not a server (skipped)": (["django_automigrate"], True),
    }
    for label, (extra, enabled) in variants.items():
        samples = [sample(extra, enabled) for _ in range(args.repeat)]
        print(
            f"{label:40s} median {statistics.median(samples) * 1000:7.1f} ms"
            f"  (min {min(samples) * 1000:.1f}, n={args.repeat})"
        )


if __name__ == "__main__":
    main()

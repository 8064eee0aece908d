#!/usr/bin/env python
"""Django's command-line utility for the example project."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    if importlib.util.find_spec("django_automigrate") is None:
        # Not installed (pip install -e .): use the checkout this example lives in.
        sys.path.insert(1, str(Path(__file__).resolve().parent.parent))
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()

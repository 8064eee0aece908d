"""The fleet: the processes running this project's code, and which code each one runs."""

from __future__ import annotations

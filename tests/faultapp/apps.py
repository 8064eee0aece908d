"""A test app whose migrations and hooks synchronise with a test through files (handshakes).

Enabled per process with ``AUTOMIGRATE_TEST_EXTRA_APPS=tests.faultapp``; steered by the
variables of :mod:`tests.faultapp.handshake`.
"""

from __future__ import annotations

from django.apps import AppConfig


class FaultAppConfig(AppConfig):
    name = "tests.faultapp"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from tests.faultapp import handshake

        handshake.install()

from __future__ import annotations

from django.apps import AppConfig


class AutomigrateConfig(AppConfig):
    name = "django_automigrate"
    verbose_name = "Automigrate"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the system checks; neither import touches a database.
        from django_automigrate import checks, startup  # noqa: F401

        # Decides (from settings and the kind of process) and, when this process migrates at
        # startup, schedules the run for the moment every app is ready: never in here.
        startup.on_ready()

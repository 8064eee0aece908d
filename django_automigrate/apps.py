from __future__ import annotations

from django.apps import AppConfig


class AutomigrateConfig(AppConfig):
    name = "django_automigrate"
    verbose_name = "Automigrate"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the system checks; importing it touches no database.
        from django_automigrate import checks  # noqa: F401

from __future__ import annotations

from django.apps import AppConfig


class AutomigrateConfig(AppConfig):
    name = "django_automigrate"
    verbose_name = "Automigrate"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the system checks; no import here touches a database.
        from django_automigrate import checks, signals, startup  # noqa: F401
        from django_automigrate.reporting import notify

        # MAIL_ADMINS_ON_FAILURE is read when a run fails, so the receiver is always connected.
        signals.run_failed.connect(
            notify.mail_admins_on_failure, dispatch_uid="django_automigrate.mail_admins"
        )

        # Decides (from settings and the kind of process) and, when this process migrates at
        # startup, schedules the run for the moment every app is ready: never in here.
        startup.on_ready()

import django.db.models.deletion
from django.db import migrations, models

from django_automigrate.migrations._resumable import ResumableAddField, ResumableCreateModel


class Migration(migrations.Migration):
    dependencies = [
        ("django_automigrate", "0004_lock_waits"),
    ]

    operations = [
        ResumableCreateModel(
            name="FleetMember",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "key",
                    models.CharField(
                        help_text="host, pid and start time.", max_length=64, unique=True
                    ),
                ),
                ("host", models.CharField(max_length=255)),
                ("pid", models.PositiveIntegerField()),
                (
                    "kind",
                    models.CharField(
                        help_text="web, worker, cron: what the process does.", max_length=50
                    ),
                ),
                ("release", models.CharField(blank=True, max_length=255)),
                (
                    "graph",
                    models.CharField(
                        help_text="Fingerprint of the migration graph.", max_length=32
                    ),
                ),
                (
                    "leaves",
                    models.JSONField(default=list, help_text="The latest migration of each app."),
                ),
                ("started_at", models.DateTimeField()),
                ("last_seen", models.DateTimeField(db_index=True)),
                ("stopped_at", models.DateTimeField(blank=True, null=True)),
            ],
            options={
                "verbose_name": "fleet member",
                "ordering": ("-last_seen", "id"),
            },
        ),
        ResumableAddField(
            model_name="migrationrun",
            name="deferred",
            field=models.JSONField(
                blank=True,
                help_text="Operations applied to Django's state only, their database work deferred until no older code serves (or, for a contract run, the ones it did).",
                null=True,
            ),
        ),
        migrations.AlterField(
            model_name="migrationrun",
            name="trigger",
            field=models.CharField(
                choices=[
                    ("startup", "startup"),
                    ("command", "command"),
                    ("rollback", "rollback"),
                    ("contract", "contract"),
                ],
                max_length=20,
            ),
        ),
        ResumableCreateModel(
            name="DeferredOperation",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("database", models.CharField(max_length=100)),
                (
                    "migration",
                    models.CharField(help_text="app_label.migration_name", max_length=255),
                ),
                ("operation_index", models.PositiveIntegerField()),
                ("description", models.CharField(max_length=255)),
                (
                    "kind",
                    models.CharField(help_text="What is deferred: drop_column, …", max_length=30),
                ),
                ("deferred_at", models.DateTimeField()),
                ("contracted_at", models.DateTimeField(blank=True, null=True)),
                (
                    "contracted_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="django_automigrate.migrationrun",
                    ),
                ),
                (
                    "deferred_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="django_automigrate.migrationrun",
                    ),
                ),
            ],
            options={
                "verbose_name": "deferred operation",
                "ordering": ("id",),
                "constraints": [
                    models.UniqueConstraint(
                        fields=("database", "migration", "operation_index"),
                        name="automigrate_deferred_once",
                    )
                ],
            },
        ),
    ]

from django.db import migrations, models

from django_automigrate.migrations._resumable import ResumableAddField


class Migration(migrations.Migration):
    dependencies = [
        ("django_automigrate", "0002_rollback"),
    ]

    operations = [
        ResumableAddField(
            model_name="migrationrun",
            name="in_flight",
            field=models.CharField(
                blank=True,
                db_default="",
                help_text="The migration being applied (or 'unapplying <label>') right now; "
                "written before it starts, so that a run killed inside it says which.",
                max_length=255,
            ),
        ),
        migrations.AlterField(
            model_name="migrationrun",
            name="status",
            field=models.CharField(
                choices=[
                    ("running", "running"),
                    ("succeeded", "succeeded"),
                    ("failed", "failed"),
                    ("rolled_back", "rolled back"),
                    ("timed_out", "timed out"),
                    ("interrupted", "interrupted"),
                ],
                default="running",
                max_length=20,
            ),
        ),
    ]

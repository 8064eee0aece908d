from django.db import migrations, models

from django_automigrate.migrations._resumable import ResumableAddField


class Migration(migrations.Migration):
    dependencies = [
        ("django_automigrate", "0003_interrupted"),
    ]

    operations = [
        ResumableAddField(
            model_name="migrationrun",
            name="lock_waits",
            field=models.JSONField(
                blank=True,
                help_text="Lock waits of the run's statements: migration, seconds, blocking "
                "sessions.",
                null=True,
            ),
        ),
    ]

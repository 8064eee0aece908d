"""Not atomic anywhere: a table, the handshake ``0004``, then a column. Killed at the handshake,
the table stays without the column, and the migration unrecorded: half-applied."""

from django.db import migrations, models

from tests.faultapp.handshake import pause


def wait(apps, schema_editor):
    pause("0004", schema_editor.connection)


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("faultapp", "0003_count")]

    operations = [
        migrations.CreateModel(
            name="Partial",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(default="", max_length=20)),
            ],
        ),
        migrations.RunPython(wait, migrations.RunPython.noop),
        migrations.AddField("partial", "extra", models.CharField(default="", max_length=20)),
    ]

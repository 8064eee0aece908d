"""A data migration that counts itself, then waits at the handshake ``0002``."""

from django.db import migrations

from tests.faultapp.handshake import pause


def count_then_wait(apps, schema_editor):
    Counter = apps.get_model("faultapp", "Counter")
    Counter.objects.using(schema_editor.connection.alias).create(migration="0002_count_and_wait")
    pause("0002", schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [("faultapp", "0001_initial")]

    operations = [migrations.RunPython(count_then_wait, migrations.RunPython.noop)]

"""A data migration that inserts one row: applied twice, the counter table shows it."""

from django.db import migrations


def count(apps, schema_editor):
    Counter = apps.get_model("faultapp", "Counter")
    Counter.objects.using(schema_editor.connection.alias).create(migration="0003_count")


class Migration(migrations.Migration):
    dependencies = [("faultapp", "0002_count_and_wait")]

    operations = [migrations.RunPython(count, migrations.RunPython.noop)]

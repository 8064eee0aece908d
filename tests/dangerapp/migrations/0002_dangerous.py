"""One operation of each dangerous kind, each of which a dry run must warn about."""

from django.db import migrations, models


def forwards(apps, schema_editor):
    pass


class Migration(migrations.Migration):
    dependencies = [("dangerapp", "0001_initial")]

    operations = [
        migrations.RemoveField("gadget", "legacy"),
        migrations.DeleteModel("Obsolete"),
        migrations.RunPython(forwards),
        migrations.RunSQL("UPDATE dangerapp_gadget SET name = name"),
        migrations.AlterField("gadget", "name", models.CharField(max_length=50)),
        migrations.AlterField("gadget", "note", models.TextField(blank=True, null=False)),
    ]

"""Operations a dry run must not warn about."""

from django.db import migrations, models


def forwards(apps, schema_editor):
    pass


class Migration(migrations.Migration):
    dependencies = [("dangerapp", "0002_dangerous")]

    operations = [
        migrations.AlterField("gadget", "size", models.BigIntegerField(null=True)),
        migrations.AlterField("gadget", "code", models.CharField(max_length=20, default="")),
        migrations.RunPython(forwards, migrations.RunPython.noop),
        migrations.RunSQL(
            "UPDATE dangerapp_gadget SET name = name", "UPDATE dangerapp_gadget SET name = name"
        ),
        migrations.AlterField("gadget", "note", models.TextField(blank=True, null=True)),
    ]

"""A data migration that reads, then can fail: reads leave nothing behind to undo."""

from django.db import migrations

from tests.testapp.checkpoints import pause_or_fail


def read_then_maybe_fail(apps, schema_editor):
    Widget = apps.get_model("halfapp", "Widget")
    list(Widget.objects.using(schema_editor.connection.alias).all())
    pause_or_fail("halfapp_0003")


class Migration(migrations.Migration):
    dependencies = [("halfapp", "0002_widget_colour")]

    operations = [migrations.RunPython(read_then_maybe_fail, migrations.RunPython.noop)]

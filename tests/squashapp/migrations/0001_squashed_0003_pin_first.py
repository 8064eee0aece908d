from django.db import migrations, models
import django.db.models.deletion

def pin_first_note(apps, schema_editor):
    Note = apps.get_model("squashapp", "Note")
    first = Note.objects.using(schema_editor.connection.alias).order_by("pk").first()
    if first is not None:
        first.pinned = True
        first.save(update_fields=["pinned"])


class Migration(migrations.Migration):
    replaces = [
        ("squashapp", "0001_initial"),
        ("squashapp", "0002_note_pinned"),
        ("squashapp", "0003_pin_first"),
    ]

    dependencies = [
    ]

    operations = [
        migrations.CreateModel(
            name="Note",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("text", models.TextField()),
                ("pinned", models.BooleanField(default=False)),
            ],
        ),
        migrations.RunPython(pin_first_note, migrations.RunPython.noop),
    ]

from django.db import migrations, models
import django.db.models.deletion

def pin_first_note(apps, schema_editor):
    Note = apps.get_model("squashapp", "Note")
    first = Note.objects.using(schema_editor.connection.alias).order_by("pk").first()
    if first is not None:
        first.pinned = True
        first.save(update_fields=["pinned"])


class Migration(migrations.Migration):
    dependencies = [
        ('squashapp', '0002_note_pinned'),
    ]

    operations = [
        migrations.RunPython(pin_first_note, migrations.RunPython.noop),
    ]

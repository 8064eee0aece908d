from django.db import migrations, models
import django.db.models.deletion
from tests.testapp.checkpoints import checkpoint

TAGS = ("fiction", "history", "science")


def seed_tags(apps, schema_editor):
    Tag = apps.get_model("testapp", "Tag")
    for name in TAGS:
        Tag.objects.using(schema_editor.connection.alias).get_or_create(name=name)


def unseed_tags(apps, schema_editor):
    Tag = apps.get_model("testapp", "Tag")
    Tag.objects.using(schema_editor.connection.alias).filter(name__in=TAGS).delete()


class Migration(migrations.Migration):
    dependencies = [
        ('testapp', '0021_author_active'),
    ]

    operations = [
        migrations.RunPython(seed_tags, unseed_tags),
        checkpoint("0022_seed_tags"),
    ]

from django.db import migrations, models
import django.db.models.deletion

from django.utils.text import slugify


def fill_slugs(apps, schema_editor):
    Author = apps.get_model("testapp", "Author")
    for author in Author.objects.using(schema_editor.connection.alias).filter(slug=""):
        author.slug = slugify(author.name)[:120]
        author.save(update_fields=["slug"])


class Migration(migrations.Migration):
    dependencies = [
        ('testapp', '0006_author_slug'),
    ]

    operations = [
        migrations.RunPython(fill_slugs, migrations.RunPython.noop),
    ]

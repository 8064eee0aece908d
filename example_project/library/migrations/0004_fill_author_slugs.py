from django.db import migrations
from django.utils.text import slugify


def fill_slugs(apps, schema_editor):
    Author = apps.get_model("library", "Author")
    db_alias = schema_editor.connection.alias
    for author in Author.objects.using(db_alias).filter(slug=""):
        author.slug = slugify(author.name)[:200]
        author.save(update_fields=["slug"])


def clear_slugs(apps, schema_editor):
    Author = apps.get_model("library", "Author")
    Author.objects.using(schema_editor.connection.alias).update(slug="")


class Migration(migrations.Migration):
    dependencies = [
        ("library", "0003_author_slug"),
    ]

    operations = [
        migrations.RunPython(fill_slugs, clear_slugs),
    ]

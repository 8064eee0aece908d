from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("library", "0002_book_published_on"),
    ]

    operations = [
        # Existing rows get "" here; 0004 fills in the real slugs.
        migrations.AddField(
            model_name="author",
            name="slug",
            field=models.SlugField(blank=True, default="", max_length=200),
            preserve_default=False,
        ),
    ]

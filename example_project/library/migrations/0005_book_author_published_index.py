from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("library", "0004_fill_author_slugs"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="book",
            index=models.Index(fields=["author", "published_on"], name="library_book_author_pub_idx"),
        ),
    ]

from django.db import migrations, models
import django.db.models.deletion


class Migration(migrations.Migration):
    dependencies = [
        ('testapp', '0008_book_isbn'),
    ]

    operations = [
        migrations.AddIndex("book", models.Index(fields=["title"], name="testapp_book_title_idx")),
    ]

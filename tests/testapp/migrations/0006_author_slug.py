from django.db import migrations, models
import django.db.models.deletion


class Migration(migrations.Migration):
    dependencies = [
        ('testapp', '0005_book_published'),
    ]

    operations = [
        migrations.AddField("author", "slug", models.SlugField(blank=True, default="", max_length=120)),
    ]

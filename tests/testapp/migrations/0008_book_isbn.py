from django.db import migrations, models
import django.db.models.deletion


class Migration(migrations.Migration):
    dependencies = [
        ('testapp', '0007_fill_author_slugs'),
    ]

    operations = [
        migrations.AddField("book", "isbn", models.CharField(blank=True, default="", max_length=13)),
    ]

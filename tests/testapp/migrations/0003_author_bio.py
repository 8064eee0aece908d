from django.db import migrations, models
import django.db.models.deletion


class Migration(migrations.Migration):
    dependencies = [
        ('testapp', '0002_author_email'),
    ]

    operations = [
        migrations.AddField("author", "bio", models.TextField(blank=True)),
    ]

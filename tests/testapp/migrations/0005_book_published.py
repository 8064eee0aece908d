from django.db import migrations, models
import django.db.models.deletion


class Migration(migrations.Migration):
    dependencies = [
        ('testapp', '0004_book'),
    ]

    operations = [
        migrations.AddField("book", "published", models.DateField(null=True, blank=True)),
    ]

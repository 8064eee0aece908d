from django.db import migrations, models
import django.db.models.deletion


class Migration(migrations.Migration):
    dependencies = [
        ('testapp', '0020_checkpoint'),
    ]

    operations = [
        migrations.AddField("author", "active", models.BooleanField(default=True)),
    ]

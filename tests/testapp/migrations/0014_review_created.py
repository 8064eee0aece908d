from django.db import migrations, models
import django.db.models.deletion


class Migration(migrations.Migration):
    dependencies = [
        ('testapp', '0013_review'),
    ]

    operations = [
        migrations.AddField("review", "created", models.DateTimeField(null=True, blank=True)),
    ]

from django.db import migrations, models
import django.db.models.deletion


class Migration(migrations.Migration):
    dependencies = [
        ('squashapp', '0003_pin_first'),
    ]

    operations = [
        migrations.AddField("note", "color", models.CharField(blank=True, default="", max_length=20)),
    ]

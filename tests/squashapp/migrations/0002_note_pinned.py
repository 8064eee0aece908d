from django.db import migrations, models
import django.db.models.deletion


class Migration(migrations.Migration):
    dependencies = [
        ('squashapp', '0001_initial'),
    ]

    operations = [
        migrations.AddField("note", "pinned", models.BooleanField(default=False)),
    ]

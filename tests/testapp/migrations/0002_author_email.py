from django.db import migrations, models
import django.db.models.deletion


class Migration(migrations.Migration):
    dependencies = [
        ('testapp', '0001_initial'),
    ]

    operations = [
        migrations.AddField("author", "email", models.EmailField(blank=True, max_length=254)),
    ]

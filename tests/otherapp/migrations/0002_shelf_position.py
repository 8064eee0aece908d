from django.db import migrations, models
import django.db.models.deletion


class Migration(migrations.Migration):
    run_before = [("testapp", "0015_book_price")]

    dependencies = [
        ('otherapp', '0001_initial'),
    ]

    operations = [
        migrations.AddField("shelf", "position", models.PositiveIntegerField(default=0)),
    ]

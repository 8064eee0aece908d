from django.db import migrations, models
import django.db.models.deletion


class Migration(migrations.Migration):
    dependencies = [
        ('testapp', '0015_book_price'),
        ('otherapp', '0001_initial'),
    ]

    operations = [
        migrations.AlterField("author", "name", models.CharField(max_length=200)),
    ]

from django.db import migrations, models
import django.db.models.deletion
from tests.testapp.checkpoints import checkpoint


class Migration(migrations.Migration):
    dependencies = [
    ]

    operations = [
        migrations.CreateModel(
            name="Author",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(max_length=100)),
            ],
        ),
        checkpoint("0001_initial"),
    ]

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = [("pkapp", "0001_initial")]

    operations = [
        migrations.CreateModel(
            name="Child",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("parent", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, to="pkapp.parent")),
            ],
        ),
    ]

from django.db import migrations, models


class Migration(migrations.Migration):
    # pkchildapp's foreign key points at this key: altering its type alters that column too,
    # which only a state holding pkchildapp (not one of this app's ancestors alone) knows.
    dependencies = [("pkapp", "0001_initial")]

    operations = [
        migrations.AlterField("parent", "id", models.BigAutoField(primary_key=True, serialize=False)),
    ]

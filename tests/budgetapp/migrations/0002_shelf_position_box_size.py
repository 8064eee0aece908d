from django.db import migrations, models


class Migration(migrations.Migration):
    # Two statements outside one transaction (on MySQL/MariaDB, any migration is): once the
    # first has run, the second must not give up, or the migration is left half-applied.
    atomic = False

    dependencies = [("budgetapp", "0001_initial")]

    operations = [
        migrations.AddField("shelf", "position", models.IntegerField(null=True)),
        migrations.AddField("box", "size", models.IntegerField(null=True)),
    ]

"""Operations on what 0002 created: Django introspects it to write their SQL, so they come in
migrations of their own (a dry run sees the tables as they are before the plan, and before the
migration: one migration dropping the same foreign key twice would not run as printed)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("forecastapp", "0002_django_forms")]

    operations = [
        migrations.AlterField("label", "id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
    ]

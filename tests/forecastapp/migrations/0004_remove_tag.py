from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("forecastapp", "0003_after_forms")]

    operations = [migrations.RemoveField("item", "tag")]
